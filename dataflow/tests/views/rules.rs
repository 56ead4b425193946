#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

//! Rules views (criteria, threshold, spike): equal to a brute-force recomputation at
//! every closed time on 1 and 2 workers; golden inputs and outputs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::common_b::{Inputs, Rec, Update, View, check_against, present_at, run, script};
use dataflow::Time;
use dataflow::indicators::current;
use dataflow::matching::{Match, Retention, Sighting, matches};
use dataflow::views::rules::{
    CriteriaRule, ListedCard, RuleHit, RuleMeta, RuleSet, SpikeRule, ThresholdRule, criteria,
    criteria_hit, hits, spike, spike_hit, threshold, threshold_hit, window_start,
};
use dataflow::views::sightings::Victim;
use differential_dataflow::VecCollection;
use jiff::Timestamp;
use proptest::prelude::*;
use schemas::{
    EventKind, FileHashes, Indicator, IndicatorKind, Marking, Purchase, SensorEvent, SourceKind,
    Tlp,
};

const BASE_MS: i64 = 1_790_000_000_000;
const HOUR_MS: i64 = 3_600_000;

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap()
}

fn meta(id: &str) -> RuleMeta {
    RuleMeta {
        id: id.into(),
        version: "1".into(),
        title: None,
    }
}

fn blank(n: usize, kind: EventKind, observed_ms: i64) -> SensorEvent {
    SensorEvent {
        schema_version: 1,
        event_id: format!("e{n}"),
        sensor_id: "s1".into(),
        country: "FR".into(),
        observed_at: ts(observed_ms),
        kind,
        src_ip: None,
        src_port: None,
        dst_ip: None,
        dst_port: None,
        proto: None,
        domain: None,
        url: None,
        file_hashes: FileHashes::default(),
        email: None,
        wallet: None,
        victim_ip: None,
        signature: None,
        purchase: None,
    }
}

fn present_events(updates: &[Update], time: Time) -> Vec<SensorEvent> {
    present_at(updates, time)
        .into_iter()
        .filter_map(|r| match r {
            Rec::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------- criteria

struct Criteria(Vec<CriteriaRule>);

impl View for Criteria {
    type Out = RuleHit;
    fn build<'s>(&self, i: Inputs<'s>) -> VecCollection<'s, Time, RuleHit> {
        let parts: Vec<_> = self
            .0
            .iter()
            .map(|r| criteria(r, i.events.clone(), i.cards.clone()))
            .collect();
        i.events
            .filter(|_| false)
            .flat_map(|_| None::<RuleHit>)
            .concatenate(parts)
    }
}

fn criteria_rules() -> Vec<CriteriaRule> {
    vec![
        CriteriaRule {
            meta: meta("airline"),
            card_on_list: true,
            card_lists: vec!["bank-a".into()],
            max_hours_before_departure: Some(24),
            ip_country_differs: true,
            min_held: 3,
        },
        CriteriaRule {
            meta: meta("two-of-three"),
            card_on_list: true,
            card_lists: vec![],
            max_hours_before_departure: Some(12),
            ip_country_differs: true,
            min_held: 2,
        },
    ]
}

const COUNTRIES: [&str; 3] = ["FR", "DE", "NG"];

fn purchase_record() -> impl Strategy<Value = Rec> {
    prop_oneof![
        3 => (0..40usize, 0..3usize, 0..2usize, proptest::option::of(0..3usize), proptest::option::of(-120..2000i64), proptest::bool::weighted(0.1))
            .prop_map(|(n, card, card_country, src, departure_min, other_kind)| {
                let mut ev = blank(n, if other_kind { EventKind::Flow } else { EventKind::Purchase }, BASE_MS);
                ev.purchase = (!other_kind).then(|| Box::new(Purchase {
                    card_ref: format!("tok-{card}"),
                    card_country: COUNTRIES[card_country].into(),
                    src_country: src.map(|c| COUNTRIES[c].to_string()),
                    departure_at: departure_min.map(|m| ts(BASE_MS + m * 60_000)),
                    merchant: None,
                    amount_minor: None,
                    currency: None,
                }));
                Rec::Event(ev)
            }),
        2 => (0..3usize, 0..2usize).prop_map(|(card, list)| Rec::Card(ListedCard {
            card_ref: format!("tok-{card}"),
            list: ["bank-a", "bank-b"][list].into(),
        })),
    ]
}

/// Brute force: every present purchase judged against the lists naming its card at `time`.
fn criteria_oracle(updates: &[Update], time: Time, rules: &[CriteriaRule]) -> BTreeSet<RuleHit> {
    let present = present_at(updates, time);
    let mut out = BTreeSet::new();
    for rule in rules {
        for r in &present {
            let Rec::Event(ev) = r else { continue };
            let Some(p) = &ev.purchase else { continue };
            if ev.kind != EventKind::Purchase {
                continue;
            }
            let lists: BTreeSet<String> = present
                .iter()
                .filter_map(|r| match r {
                    Rec::Card(c) if c.card_ref == p.card_ref => Some(c.list.clone()),
                    _ => None,
                })
                .collect();
            let lists: Vec<String> = lists.into_iter().collect();
            out.extend(criteria_hit(rule, ev, &lists));
        }
    }
    out
}

// ---------------------------------------------------------------- threshold

struct Threshold(ThresholdRule);

impl View for Threshold {
    type Out = RuleHit;
    fn build<'s>(&self, i: Inputs<'s>) -> VecCollection<'s, Time, RuleHit> {
        threshold(&self.0, i.matches)
    }
}

fn threshold_rule() -> ThresholdRule {
    ThresholdRule {
        meta: meta("surge"),
        min_victims: 2,
        window_secs: 3600,
    }
}

fn indicator(id: &str, value: &str, tlp: Tlp, owner: &str) -> Indicator {
    Indicator {
        schema_version: 1,
        id: id.into(),
        kind: IndicatorKind::Ipv4,
        value: value.into(),
        owner: owner.into(),
        source_kind: SourceKind::Partner,
        source_id: owner.into(),
        tlp,
        sharing: vec!["FR".into(), "SG".into()],
        confidence: 80,
        created: ts(BASE_MS),
        modified: ts(BASE_MS),
        valid_from: ts(BASE_MS - 86_400_000),
        valid_until: None,
        revoked: false,
        labels: vec![],
    }
}

const VICTIMS: [&str; 4] = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"];

fn match_record() -> impl Strategy<Value = Rec> {
    (
        0..2usize,
        any::<bool>(),
        0..30usize,
        proptest::option::of(0..VICTIMS.len()),
        proptest::option::weighted(0.3, 0..2usize),
        0..3 * HOUR_MS,
    )
        .prop_map(|(ind, strict, n, victim, account, offset)| {
            let tlp = if strict { Tlp::Red } else { Tlp::Amber };
            let indicator = indicator(&format!("ind-{ind}"), "192.0.2.1", tlp, "partner-a");
            Rec::Match(Match {
                indicator,
                sighting: Sighting {
                    event_id: format!("e{n}"),
                    sensor_id: "s1".into(),
                    country: "FR".into(),
                    observed_ms: BASE_MS + offset,
                    ingested_ms: 1,
                    victim: victim.map(|v| VICTIMS[v].parse::<IpAddr>().unwrap()),
                    account: account.map(|a| format!("user{a}@mail.example")),
                },
            })
        })
}

/// Brute force: distinct victims of the present matches per indicator and window.
fn threshold_oracle(updates: &[Update], time: Time, rule: &ThresholdRule) -> BTreeSet<RuleHit> {
    let len = i64::try_from(rule.window_secs).unwrap() * 1000;
    let mut groups: BTreeMap<(String, i64), (BTreeSet<Victim>, Vec<Marking>)> = BTreeMap::new();
    for r in present_at(updates, time) {
        let Rec::Match(m) = r else { continue };
        let Some(v) = Victim::of(&m.sighting) else {
            continue;
        };
        let g = groups
            .entry((
                m.indicator.id.clone(),
                window_start(m.sighting.observed_ms, len),
            ))
            .or_default();
        g.0.insert(v);
        g.1.push(m.indicator.marking());
    }
    groups
        .into_iter()
        .filter_map(|((id, w), (victims, markings))| {
            let marking = markings.into_iter().reduce(|a, b| a.strictest(&b));
            threshold_hit(rule, &id, w, victims.len() as u64, marking)
        })
        .collect()
}

// ---------------------------------------------------------------- spike

struct Spike(SpikeRule);

impl View for Spike {
    type Out = RuleHit;
    fn build<'s>(&self, i: Inputs<'s>) -> VecCollection<'s, Time, RuleHit> {
        spike(&self.0, i.events)
    }
}

fn spike_rule() -> SpikeRule {
    SpikeRule {
        meta: meta("spike"),
        bucket_secs: 3600,
        baseline_buckets: 2,
        factor_milli: 1500,
        min_count: 2,
    }
}

fn darknet_record() -> impl Strategy<Value = Rec> {
    (
        0..60usize,
        proptest::option::weighted(0.9, 0..2usize),
        0..6 * HOUR_MS,
        proptest::bool::weighted(0.1),
    )
        .prop_map(|(n, port, offset, flow)| {
            let kind = if flow {
                EventKind::Flow
            } else {
                EventKind::Darknet
            };
            let mut ev = blank(n, kind, BASE_MS + offset);
            ev.src_ip = Some("198.51.100.9".parse().unwrap());
            ev.dst_port = port.map(|p| [23, 445][p]);
            Rec::Event(ev)
        })
}

/// Brute force: distinct darknet events per port and bucket, against the sum of the previous buckets.
fn spike_oracle(updates: &[Update], time: Time, rule: &SpikeRule) -> BTreeSet<RuleHit> {
    let len = i64::try_from(rule.bucket_secs).unwrap() * 1000;
    let mut counts: BTreeMap<(u16, i64), u64> = BTreeMap::new();
    for ev in present_events(updates, time) {
        if let (EventKind::Darknet, Some(port)) = (ev.kind, ev.dst_port) {
            *counts
                .entry((port, window_start(ev.observed_at.as_millisecond(), len)))
                .or_default() += 1;
        }
    }
    counts
        .iter()
        .filter_map(|(&(port, bucket), &count)| {
            let baseline: u64 = (1..=i64::from(rule.baseline_buckets))
                .map(|j| counts.get(&(port, bucket - j * len)).copied().unwrap_or(0))
                .sum();
            spike_hit(rule, port, bucket, count, baseline)
        })
        .collect()
}

// ---------------------------------------------------------------- oracle tests

fn ops() -> impl Strategy<Value = Vec<(usize, bool, u8)>> {
    proptest::collection::vec(
        (0..64usize, proptest::bool::weighted(0.3), any::<u8>()),
        1..30,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn criteria_hits_equal_brute_force_at_every_time(
        pool in proptest::collection::vec(purchase_record(), 1..12),
        ops in ops(),
    ) {
        let updates = script(&pool, &ops);
        let rules = criteria_rules();
        for workers in [1, 2] {
            let out = run(Criteria(rules.clone()), &updates, workers);
            check_against(&updates, &out, workers, |t| criteria_oracle(&updates, t, &rules))
                .map_err(TestCaseError::fail)?;
        }
    }

    #[test]
    fn threshold_hits_equal_brute_force_at_every_time(
        pool in proptest::collection::vec(match_record(), 1..12),
        ops in ops(),
    ) {
        let updates = script(&pool, &ops);
        let rule = threshold_rule();
        for workers in [1, 2] {
            let out = run(Threshold(rule.clone()), &updates, workers);
            check_against(&updates, &out, workers, |t| threshold_oracle(&updates, t, &rule))
                .map_err(TestCaseError::fail)?;
        }
    }

    #[test]
    fn spike_hits_equal_brute_force_at_every_time(
        pool in proptest::collection::vec(darknet_record(), 1..16),
        ops in ops(),
    ) {
        let updates = script(&pool, &ops);
        let rule = spike_rule();
        for workers in [1, 2] {
            let out = run(Spike(rule.clone()), &updates, workers);
            check_against(&updates, &out, workers, |t| spike_oracle(&updates, t, &rule))
                .map_err(TestCaseError::fail)?;
        }
    }
}

// ---------------------------------------------------------------- golden tests

/// Every rule of a golden rules file over the golden inputs; threshold rules see the
/// matches of the input events with the current input indicators.
struct AllRules(RuleSet);

impl AllRules {
    fn load(view: &str) -> Self {
        let text =
            std::fs::read_to_string(crate::common_a::golden_dir(view).join("rules.toml")).unwrap();
        AllRules(RuleSet::from_toml(&text).unwrap())
    }
}

impl View for AllRules {
    type Out = RuleHit;
    fn build<'s>(&self, i: Inputs<'s>) -> VecCollection<'s, Time, RuleHit> {
        let matched = matches(
            i.events.clone().map(|ev| (0, ev)),
            current(i.indicators),
            Retention::Unbounded,
        );
        hits(&self.0, i.events, matched, i.cards)
    }
}

#[test]
fn golden_criteria() {
    crate::common_b::golden("criteria", || AllRules::load("criteria"));
}

#[test]
fn golden_threshold() {
    crate::common_b::golden("threshold", || AllRules::load("threshold"));
}

#[test]
fn golden_spike() {
    crate::common_b::golden("spike", || AllRules::load("spike"));
}
