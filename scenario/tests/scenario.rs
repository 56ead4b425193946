//! The scenario generator as its users rely on it: deterministic, every record valid or
//! rejected as planned, records in event-time order, and a truth that equals an
//! independent brute-force recomputation from the decoded records.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::OnceLock;

use proptest::prelude::*;
use scenario::{BadKind, GeneratedRecord, Generator, ScenarioConfig, Truth, write_dir};
use schemas::{ErrorCode, Indicator, IndicatorKind, Input, SensorEvent, SourceKind, Topic};

fn config(seed: u64, events: u64) -> ScenarioConfig {
    ScenarioConfig {
        seed,
        events: Some(events),
        ..ScenarioConfig::default()
    }
}

fn run(cfg: ScenarioConfig) -> (Vec<GeneratedRecord>, Truth) {
    let mut g = Generator::new(cfg);
    let records: Vec<_> = g.by_ref().collect();
    (records, g.into_truth())
}

struct Run {
    records: Vec<GeneratedRecord>,
    truth: Truth,
    /// Decoded inputs of the valid records, in stream order.
    inputs: Vec<(Topic, Input)>,
}

/// One medium run shared by the tests that only read it: 60,000 event slots, 1% bad.
fn shared() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let (records, truth) = run(ScenarioConfig {
            bad_record_ratio: 0.01,
            ..config(42, 60_000)
        });
        let inputs = decode_valid(&records);
        Run {
            records,
            truth,
            inputs,
        }
    })
}

fn decode_valid(records: &[GeneratedRecord]) -> Vec<(Topic, Input)> {
    records
        .iter()
        .filter(|r| r.bad.is_none())
        .map(|r| {
            let input = schemas::decode_record(r.topic, &r.payload).unwrap_or_else(|e| {
                panic!(
                    "valid {} record rejected: {e}\n{}",
                    r.topic,
                    String::from_utf8_lossy(&r.payload)
                )
            });
            (r.topic, input)
        })
        .collect()
}

/// The independent oracle: latest version wins, revocation, validity window, parent
/// domains, URL hosts and CIDR ranges, by plain scanning.
#[derive(Debug, Default, PartialEq)]
struct Oracle {
    expected: BTreeSet<(String, String)>,
    retroactive: BTreeSet<(String, String)>,
    expired: BTreeSet<(String, String)>,
    revoked: BTreeSet<String>,
}

fn in_cidr(ip: IpAddr, cidr: &str) -> bool {
    let Some((net, len)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(len)) = (net.parse::<IpAddr>(), len.parse::<u32>()) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if len <= 32 => {
            len == 0 || (u32::from(a) ^ u32::from(n)) >> (32 - len) == 0
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if len <= 128 => {
            len == 0 || (u128::from(a) ^ u128::from(n)) >> (128 - len) == 0
        }
        _ => false,
    }
}

fn observables(ev: &SensorEvent) -> (BTreeSet<String>, Vec<IpAddr>) {
    let ips: Vec<IpAddr> = [ev.src_ip, ev.dst_ip, ev.victim_ip]
        .into_iter()
        .flatten()
        .collect();
    let mut values: BTreeSet<String> = ips.iter().map(|ip| ip.to_string()).collect();
    let mut hosts: Vec<String> = ev.domain.iter().cloned().collect();
    if let Some(u) = &ev.url {
        values.insert(u.clone());
        let parsed = url::Url::parse(u).expect("event URLs parse");
        if let Some(url::Host::Domain(h)) = parsed.host() {
            hosts.push(h.to_string());
        }
    }
    for h in hosts {
        let labels: Vec<&str> = h.split('.').collect();
        for i in 0..labels.len().saturating_sub(1) {
            values.insert(labels[i..].join("."));
        }
    }
    let fh = &ev.file_hashes;
    values.extend(
        [&fh.md5, &fh.sha1, &fh.sha256]
            .into_iter()
            .flatten()
            .cloned(),
    );
    values.extend(ev.email.iter().cloned());
    values.extend(ev.wallet.iter().cloned());
    (values, ips)
}

fn oracle(inputs: &[(Topic, Input)]) -> Oracle {
    let mut latest: BTreeMap<&str, &Indicator> = BTreeMap::new();
    for (_, input) in inputs {
        if let Input::Indicator(i) = input {
            match latest.get(i.id.as_str()) {
                Some(old) if old.modified > i.modified => {}
                _ => {
                    latest.insert(&i.id, i);
                }
            }
        }
    }
    let mut out = Oracle::default();
    let mut by_value: BTreeMap<&str, Vec<&Indicator>> = BTreeMap::new();
    let mut cidrs: Vec<&Indicator> = Vec::new();
    for i in latest.values() {
        if i.revoked {
            out.revoked.insert(i.id.clone());
        } else if i.kind == IndicatorKind::Cidr {
            cidrs.push(i);
        } else {
            by_value.entry(&i.value).or_default().push(i);
        }
    }
    for (_, input) in inputs {
        let Input::Event(ev) = input else { continue };
        let (values, ips) = observables(ev);
        let mut hit: BTreeMap<&str, &Indicator> = BTreeMap::new();
        for v in &values {
            for i in by_value.get(v.as_str()).into_iter().flatten() {
                hit.insert(&i.id, i);
            }
        }
        for i in &cidrs {
            if ips.iter().any(|ip| in_cidr(*ip, &i.value)) {
                hit.insert(&i.id, i);
            }
        }
        let at = ev.observed_at;
        for (id, i) in hit {
            let pair = (ev.event_id.clone(), id.to_string());
            if at < i.valid_from {
                continue;
            }
            if i.valid_until.is_some_and(|u| at >= u) {
                out.expired.insert(pair);
                continue;
            }
            if at < i.created {
                out.retroactive.insert(pair.clone());
            }
            out.expected.insert(pair);
        }
    }
    out
}

fn assert_truth_matches_oracle(truth: &Truth, inputs: &[(Topic, Input)]) {
    let o = oracle(inputs);
    assert_eq!(truth.revoked_indicators, o.revoked, "revoked indicators");
    assert_eq!(truth.expired, o.expired, "expired pairs");
    assert_eq!(truth.retroactive, o.retroactive, "retroactive matches");
    assert_eq!(truth.expected_matches, o.expected, "expected matches");
}

#[test]
fn same_seed_gives_identical_records_and_truth() {
    let (a, ta) = run(config(7, 20_000));
    let (b, tb) = run(config(7, 20_000));
    assert_eq!(a, b);
    assert_eq!(ta, tb);
    assert_eq!(
        serde_json::to_vec(&ta).expect("truth serializes"),
        serde_json::to_vec(&tb).expect("truth serializes")
    );
    let (c, tc) = run(config(8, 20_000));
    assert_ne!(a, c);
    assert_ne!(ta.expected_matches, tc.expected_matches);
}

#[test]
fn every_valid_record_decodes_and_every_bad_one_is_rejected_as_planned() {
    let run = shared();
    let mut combos = BTreeSet::new();
    let mut bad = 0;
    for r in &run.records {
        assert!(
            !r.payload.contains(&b'\n'),
            "newline in a {} payload",
            r.topic
        );
        assert!(
            r.payload.len() < 4096,
            "record of {} bytes",
            r.payload.len()
        );
        assert!(Topic::INPUTS.contains(&r.topic));
        let Some(kind) = r.bad else { continue };
        bad += 1;
        let err = schemas::decode_record(r.topic, &r.payload)
            .err()
            .unwrap_or_else(|| panic!("bad {kind:?} {} record accepted", r.topic));
        let expected = match kind {
            BadKind::TruncatedJson => ErrorCode::MalformedJson,
            BadKind::WrongType => ErrorCode::WrongType,
            BadKind::UnknownSchemaVersion => ErrorCode::UnknownSchemaVersion,
            BadKind::InvalidUtf8 => ErrorCode::InvalidUtf8,
            BadKind::HostileString | BadKind::InvalidValue => ErrorCode::InvalidValue,
            BadKind::UnknownField => ErrorCode::UnknownField,
        };
        assert_eq!(err.code, expected, "{kind:?} on {}: {err}", r.topic);
        combos.insert((kind, r.topic));
    }
    assert_eq!(bad, run.truth.bad_records);
    assert_eq!(run.truth.bad_records_by_kind.values().sum::<u64>(), bad);
    // 1% of 60,000 slots: every damage on every input topic.
    assert_eq!(
        combos.len(),
        BadKind::ALL.len() * Topic::INPUTS.len(),
        "{combos:?}"
    );
    // Every valid record decoded (decode_valid panics otherwise).
    assert_eq!(run.inputs.len() as u64, run.records.len() as u64 - bad);
}

#[test]
fn default_bad_ratio_is_about_one_in_a_thousand() {
    let (records, truth) = run(config(3, 50_000));
    let bad = records.iter().filter(|r| r.bad.is_some()).count() as u64;
    assert_eq!(bad, truth.bad_records);
    assert!(
        (20..=90).contains(&bad),
        "{bad} bad records in 50,000 slots"
    );
}

#[test]
fn timestamps_are_natural_time_and_never_decrease() {
    let run = shared();
    let mut last = i64::MIN;
    let mut valid = run.inputs.iter();
    for r in &run.records {
        assert!(r.timestamp_ms >= last, "time went back at {r:?}");
        last = r.timestamp_ms;
        if r.bad.is_some() {
            continue;
        }
        let (_, input) = valid.next().expect("one input per valid record");
        let natural = match input {
            Input::Event(e) => e.observed_at,
            // Partner indicators: `modified`; OSINT items: `published`, which becomes `modified`.
            Input::Indicator(i) => i.modified,
            Input::Action(a) => a.at,
        };
        assert_eq!(natural.as_millisecond(), r.timestamp_ms);
    }
    let first = run.records.first().expect("records");
    assert_eq!(first.timestamp_ms, scenario::DEFAULT_START_MS);
    // 60,000 slots at 10,000 events/s span 6 s of event time.
    assert_eq!(last - first.timestamp_ms, 5_999);
}

#[test]
fn events_per_sec_sets_the_event_time_density() {
    let (records, _) = run(ScenarioConfig {
        events_per_sec: 100,
        start_ms: 1_700_000_000_000,
        ..config(5, 1_000)
    });
    let events: Vec<_> = records
        .iter()
        .filter(|r| r.topic == Topic::SensorEvents)
        .collect();
    assert_eq!(events.len(), 1_000);
    assert_eq!(events[0].timestamp_ms, 1_700_000_000_000);
    assert_eq!(events[1].timestamp_ms, 1_700_000_000_010);
    assert_eq!(events[999].timestamp_ms, 1_700_000_009_990);
}

#[test]
fn the_world_is_sixty_countries_of_sensors_partners_and_feeds() {
    let run = shared();
    let mut countries = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    let mut owners = BTreeSet::new();
    let mut feeds = BTreeSet::new();
    for (_, input) in &run.inputs {
        match input {
            Input::Event(e) => {
                assert!(
                    e.sensor_id.starts_with(&e.country.to_ascii_lowercase()),
                    "{}",
                    e.sensor_id
                );
                countries.insert(e.country.clone());
                kinds.insert(e.kind);
            }
            Input::Indicator(i) if i.source_kind == SourceKind::Partner => {
                owners.insert(i.owner.clone());
                if matches!(i.tlp, schemas::Tlp::Amber | schemas::Tlp::Red) {
                    assert!(!i.sharing.is_empty(), "{} shares with nobody", i.owner);
                    assert!(
                        i.sharing.iter().all(|b| b.len() == 2),
                        "bureau ids are country codes"
                    );
                }
            }
            Input::Indicator(i) => {
                feeds.insert(i.source_id.clone());
            }
            Input::Action(_) => {}
        }
    }
    assert!(countries.len() >= 50, "{} countries", countries.len());
    assert_eq!(kinds.len(), 8, "{kinds:?}");
    assert!(owners.len() >= 2, "{owners:?}");
    assert!(!feeds.is_empty(), "{feeds:?}");
}

#[test]
fn campaigns_come_from_every_partner_level_and_several_feeds() {
    let mut g = Generator::new(config(21, 400_000));
    let mut tlps = BTreeMap::new();
    for r in g
        .by_ref()
        .filter(|r| r.topic == Topic::PartnerIndicators && r.bad.is_none())
    {
        let Ok(Input::Indicator(i)) = schemas::decode_record(r.topic, &r.payload) else {
            panic!("partner indicator rejected");
        };
        let partner = scenario::world::PARTNERS
            .iter()
            .find(|p| p.id == i.owner)
            .expect("owner is a partner");
        assert_eq!(
            (i.tlp, i.sharing.as_slice()),
            (
                partner.tlp,
                partner
                    .sharing
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .as_slice()
            )
        );
        tlps.insert(i.owner.clone(), i.tlp);
    }
    let t = g.truth();
    let partners: BTreeSet<_> = t
        .campaigns
        .iter()
        .filter(|c| c.source_kind == SourceKind::Partner)
        .map(|c| c.publisher.as_str())
        .collect();
    let feeds: BTreeSet<_> = t
        .campaigns
        .iter()
        .filter(|c| c.source_kind == SourceKind::Osint)
        .map(|c| c.publisher.as_str())
        .collect();
    assert!(partners.len() >= 4, "{partners:?}");
    assert!(feeds.len() >= 2, "{feeds:?}");
    assert_eq!(tlps.values().collect::<BTreeSet<_>>().len(), 5, "{tlps:?}");
}

#[test]
fn truth_has_retroactive_live_expired_and_revoked_cases() {
    let run = shared();
    let t = &run.truth;
    // One campaign per 5,000 slots on average.
    assert!(
        (8..=18).contains(&t.campaigns.len()),
        "{} campaigns",
        t.campaigns.len()
    );
    assert!(!t.retroactive.is_empty());
    assert!(t.live().count() > 0);
    assert!(!t.expired.is_empty());
    assert!(!t.revoked_indicators.is_empty());
    assert!(t.retroactive.is_subset(&t.expected_matches));
    assert!(t.expected_matches.is_disjoint(&t.expired));
    for (_, ind) in &t.expected_matches {
        assert!(!t.revoked_indicators.contains(ind));
    }

    // Hits through a parent domain and inside a CIDR range are among the matches.
    let events: BTreeMap<&str, &SensorEvent> = run
        .inputs
        .iter()
        .filter_map(|(_, i)| match i {
            Input::Event(e) => Some((e.event_id.as_str(), e)),
            _ => None,
        })
        .collect();
    let infra: BTreeMap<&str, (IndicatorKind, &str)> = t
        .campaigns
        .iter()
        .flat_map(|c| &c.infrastructure)
        .flat_map(|i| {
            i.indicator_id
                .iter()
                .chain(&i.corroborating_ids)
                .map(|id| (id.as_str(), (i.kind, i.value.as_str())))
        })
        .collect();
    let mut subdomain = 0;
    let mut in_range = 0;
    for (ev, ind) in &t.expected_matches {
        let (Some(e), Some((kind, value))) = (events.get(ev.as_str()), infra.get(ind.as_str()))
        else {
            panic!("pair ({ev}, {ind}) names an unknown event or indicator");
        };
        match kind {
            IndicatorKind::Domain if e.domain.as_deref() != Some(value) => subdomain += 1,
            IndicatorKind::Cidr => in_range += 1,
            _ => {}
        }
    }
    assert!(
        subdomain > 0 && in_range > 0,
        "{subdomain} subdomain, {in_range} CIDR matches"
    );
}

#[test]
fn truth_equals_a_brute_force_oracle() {
    let run = shared();
    assert_truth_matches_oracle(&run.truth, &run.inputs);
}

#[test]
fn truth_of_a_prefix_is_exact_too() {
    let mut g = Generator::new(config(11, 40_000));
    let records: Vec<_> = g.by_ref().take(23_456).collect();
    assert_truth_matches_oracle(g.truth(), &decode_valid(&records));
}

#[test]
fn unbounded_generator_keeps_going_and_truth_grows() {
    let mut g = Generator::new(ScenarioConfig {
        seed: 9,
        ..ScenarioConfig::default()
    });
    assert_eq!(g.by_ref().take(30_000).count(), 30_000);
    let before = g.truth().expected_matches.len();
    let campaigns = g.truth().campaigns.len();
    assert_eq!(g.by_ref().take(60_000).count(), 60_000);
    assert!(g.truth().campaigns.len() > campaigns);
    assert!(g.truth().expected_matches.len() > before);
}

#[test]
fn without_truth_the_records_are_the_same_and_no_match_is_tracked() {
    let with = Generator::new(ScenarioConfig {
        seed: 9,
        ..ScenarioConfig::default()
    });
    let mut without = Generator::new(ScenarioConfig {
        seed: 9,
        track_truth: false,
        ..ScenarioConfig::default()
    });
    let a: Vec<_> = with.take(40_000).collect();
    let b: Vec<_> = without.by_ref().take(40_000).collect();
    assert_eq!(a, b);
    assert!(without.truth().expected_matches.is_empty());
}

#[test]
fn write_dir_writes_one_file_per_topic_and_the_truth() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = config(42, 60_000);
    let summary = write_dir(&cfg, dir.path()).expect("written");
    let (records, truth) = run(cfg.clone());
    for topic in Topic::INPUTS {
        let path = dir.path().join(format!("{}.jsonl", topic.suffix()));
        let text = std::fs::read(&path).expect("topic file");
        let lines: Vec<&[u8]> = text
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        let expected: Vec<&[u8]> = records
            .iter()
            .filter(|r| r.topic == topic)
            .map(|r| r.payload.as_slice())
            .collect();
        assert_eq!(lines, expected, "{}", path.display());
        assert_eq!(summary.records.get(&topic), Some(&(lines.len() as u64)));
    }
    assert_eq!(summary.total(), records.len() as u64);
    assert_eq!(summary.bad_records, truth.bad_records);
    assert_eq!(
        summary.expected_matches,
        truth.expected_matches.len() as u64
    );
    let written: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join(scenario::TRUTH_FILE)).expect("truth file"),
    )
    .expect("truth is JSON");
    assert_eq!(
        written,
        serde_json::to_value(&truth).expect("truth serializes")
    );
    assert!(
        written["expected_matches"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );

    // Same config, same bytes.
    let again = tempfile::tempdir().expect("temp dir");
    write_dir(&cfg, again.path()).expect("written");
    for name in [
        "sensor.events.jsonl",
        "partner.indicators.jsonl",
        "osint.items.jsonl",
        "truth.json",
    ] {
        assert_eq!(
            std::fs::read(dir.path().join(name)).expect("file"),
            std::fs::read(again.path().join(name)).expect("file"),
            "{name}"
        );
    }
}

#[test]
fn write_dir_refuses_an_unbounded_scenario() {
    let dir = tempfile::tempdir().expect("temp dir");
    let err = write_dir(&ScenarioConfig::default(), dir.path()).expect_err("unbounded");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    #[test]
    fn truth_equals_the_oracle_for_any_config(
        seed in any::<u64>(),
        events in 8_000u64..16_000,
        eps in 50u32..20_000,
        bad in 0.0f64..0.05,
    ) {
        let cfg = ScenarioConfig {
            seed,
            events: Some(events),
            start_ms: 1_600_000_000_000,
            events_per_sec: eps,
            bad_record_ratio: bad,
            track_truth: true,
        };
        let (records, truth) = run(cfg);
        prop_assert!(records.windows(2).all(|w| w[0].timestamp_ms <= w[1].timestamp_ms));
        for r in records.iter().filter(|r| r.bad.is_some()) {
            prop_assert!(schemas::decode_record(r.topic, &r.payload).is_err());
        }
        assert_truth_matches_oracle(&truth, &decode_valid(&records));
    }
}
