//! Warning lists: the incremental split of matches into kept and suppressed equals a
//! brute-force recomputation at every closed time (matches and list entries both
//! changing), on 1 and 2 workers; the shipped default lists parse; and a golden run
//! with a reload of the lists.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::common_a::{
    BASE_MS, GoldenLine, Update, a_match, indicator, input_at, run, script_from_set,
};
use crate::common_a::{check_golden_at, check_oracle, end_of, merged};
use dataflow::Time;
use dataflow::matching::Match;
use dataflow::views::warning_lists::{Coverage, WarningEntry, parse, suppress};
use differential_dataflow::VecCollection;
use proptest::prelude::*;
use schemas::{Indicator, IndicatorKind, SourceKind};
use serde::{Deserialize, Serialize};

const DEFAULT_LISTS: &str = include_str!("../../../deploy/config/warning-lists.toml");

/// One output record: a kept match, or a suppressed one with its lists.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum Out {
    Kept(Match),
    Suppressed(Match, Vec<String>),
}

fn split<'s>(
    matches: VecCollection<'s, Time, Match>,
    entries: VecCollection<'s, Time, WarningEntry>,
) -> VecCollection<'s, Time, Out> {
    let s = suppress(matches, entries);
    s.kept
        .map(Out::Kept)
        .concat(s.suppressed.map(|(m, lists)| Out::Suppressed(m, lists)))
}

/// `value` as an address or a network (address, prefix length).
fn network(kind: IndicatorKind, value: &str) -> Option<(IpAddr, u32)> {
    match kind {
        IndicatorKind::Ipv4 | IndicatorKind::Ipv6 => {
            let ip: IpAddr = value.parse().unwrap();
            Some((ip, if ip.is_ipv6() { 128 } else { 32 }))
        }
        IndicatorKind::Cidr => {
            let (n, l) = value.split_once('/').unwrap();
            Some((n.parse().unwrap(), l.parse().unwrap()))
        }
        _ => None,
    }
}

/// The top `len` bits of an address, as a number (IPv4 in the low 32 bits).
fn prefix(ip: IpAddr, len: u32) -> u128 {
    let (bits, width) = match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    };
    if len == 0 { 0 } else { bits >> (width - len) }
}

/// Brute force: does `entry` cover the indicator?
fn covers(entry: &WarningEntry, ind: &Indicator) -> bool {
    if entry.kind == IndicatorKind::Domain && entry.subdomains {
        return ind.kind == IndicatorKind::Domain
            && (ind.value == entry.value || ind.value.ends_with(&format!(".{}", entry.value)));
    }
    if let (Some((e_net, e_len)), Some((i_net, i_len))) = (
        network(entry.kind, &entry.value),
        network(ind.kind, &ind.value),
    ) {
        // The indicator's addresses all lie in the entry's.
        return e_net.is_ipv6() == i_net.is_ipv6()
            && i_len >= e_len
            && prefix(i_net, e_len) == prefix(e_net, e_len);
    }
    entry.kind == ind.kind && entry.value == ind.value
}

fn oracle(
    matches: &[(Time, Match, isize)],
    entries: &[(Time, WarningEntry, isize)],
    time: Time,
) -> BTreeSet<Out> {
    let entries = input_at(entries.iter().cloned(), time);
    input_at(matches.iter().cloned(), time)
        .into_keys()
        .map(|m| {
            let lists: BTreeSet<String> = entries
                .keys()
                .filter(|e| covers(e, &m.indicator))
                .map(|e| e.list.clone())
                .collect();
            if lists.is_empty() {
                Out::Kept(m)
            } else {
                Out::Suppressed(m, lists.into_iter().collect())
            }
        })
        .collect()
}

const IND_VALUES: [(IndicatorKind, &str); 12] = [
    (IndicatorKind::Ipv4, "8.8.8.8"),
    (IndicatorKind::Ipv4, "10.1.2.3"),
    (IndicatorKind::Ipv4, "192.0.2.1"),
    (IndicatorKind::Ipv6, "fd00::1"),
    (IndicatorKind::Cidr, "10.1.0.0/16"),
    (IndicatorKind::Cidr, "10.0.0.0/8"),
    (IndicatorKind::Cidr, "8.0.0.0/8"),
    (IndicatorKind::Cidr, "8.8.8.8/32"),
    (IndicatorKind::Domain, "a.cdn.example"),
    (IndicatorKind::Domain, "cdn.example"),
    (IndicatorKind::Domain, "evil.example"),
    (IndicatorKind::Url, "http://cdn.example/x"),
];

const ENTRIES: [(&str, IndicatorKind, &str, bool); 11] = [
    ("resolvers", IndicatorKind::Ipv4, "8.8.8.8", false),
    ("resolvers", IndicatorKind::Cidr, "8.8.8.0/24", false),
    ("private", IndicatorKind::Cidr, "10.0.0.0/8", false),
    ("private", IndicatorKind::Cidr, "10.1.0.0/24", false),
    ("private", IndicatorKind::Cidr, "fc00::/7", false),
    ("private", IndicatorKind::Cidr, "0.0.0.0/0", false),
    ("local", IndicatorKind::Cidr, "10.1.2.3/32", false),
    ("cdn", IndicatorKind::Domain, "cdn.example", true),
    ("cdn", IndicatorKind::Domain, "evil.example", false),
    ("local", IndicatorKind::Domain, "cdn.example", false),
    ("local", IndicatorKind::Url, "http://cdn.example/x", false),
];

/// Distinct matches: the view passes multiplicities through, and the oracle works on sets.
fn match_pool(specs: &[(usize, usize)]) -> Vec<Match> {
    let specs: BTreeSet<(usize, usize)> = specs.iter().copied().collect();
    specs
        .iter()
        .map(|&(value, event)| {
            let (kind, v) = IND_VALUES[value];
            let ind = indicator(
                &format!("ind-{value}"),
                kind,
                v,
                (SourceKind::Partner, "p"),
                50,
                BASE_MS,
                &[],
            );
            a_match(&ind, &format!("e{event}"), "s1", "FR", BASE_MS, None, None)
        })
        .collect()
}

fn entry_pool() -> Vec<WarningEntry> {
    ENTRIES
        .iter()
        .map(|&(list, kind, value, subdomains)| WarningEntry {
            list: list.to_string(),
            kind,
            value: value.to_string(),
            subdomains,
        })
        .collect()
}

fn check(
    matches: &[(Time, Match, isize)],
    entries: &[(Time, WarningEntry, isize)],
    workers: usize,
) -> Result<(), TestCaseError> {
    let script = merged(matches, entries);
    let out = run(&script, end_of(&script), workers, |m, e, _| split(m, e));
    check_oracle(&script, &out, workers, |t| oracle(matches, entries, t))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn suppression_equals_brute_force_at_every_closed_time(
        match_specs in proptest::collection::vec((0..IND_VALUES.len(), 0..3usize), 1..10),
        match_steps in proptest::collection::vec((any::<usize>(), proptest::bool::weighted(0.7), any::<u8>()), 1..20),
        entry_steps in proptest::collection::vec((any::<usize>(), proptest::bool::weighted(0.6), any::<u8>()), 0..20),
    ) {
        let matches = script_from_set(&match_steps, &match_pool(&match_specs));
        let entries = script_from_set(&entry_steps, &entry_pool());
        check(&matches, &entries, 1)?;
        check(&matches, &entries, 2)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// The index the alert assembly keeps names, for every indicator value, the lists a
    /// brute force finds, as entries come and go (some twice over).
    #[test]
    fn the_coverage_index_names_the_lists_brute_force_finds(
        steps in proptest::collection::vec((0..ENTRIES.len(), proptest::bool::weighted(0.6)), 0..30),
    ) {
        let pool = entry_pool();
        let mut coverage = Coverage::default();
        let mut held: Vec<usize> = Vec::new();
        for (at, insert) in steps {
            if insert {
                coverage.update(&pool[at], 1);
                held.push(at);
            } else if let Some(i) = held.iter().position(|h| *h == at) {
                coverage.update(&pool[at], -1);
                held.swap_remove(i);
            }
            for (kind, value) in IND_VALUES {
                let ind = indicator("i", kind, value, (SourceKind::Partner, "p"), 50, BASE_MS, &[]);
                let expected: BTreeSet<String> = held
                    .iter()
                    .map(|h| &pool[*h])
                    .filter(|e| covers(e, &ind))
                    .map(|e| e.list.clone())
                    .collect();
                prop_assert_eq!(
                    coverage.lists(kind, value),
                    expected.into_iter().collect::<Vec<_>>(),
                    "{} with {:?}", value, held
                );
            }
        }
    }
}

#[test]
fn the_default_lists_parse_and_hold_the_usual_suspects() {
    let entries = parse(DEFAULT_LISTS).unwrap();
    let has = |list: &str, kind: IndicatorKind, value: &str, subdomains: bool| {
        entries.contains(&WarningEntry {
            list: list.into(),
            kind,
            value: value.into(),
            subdomains,
        })
    };
    assert!(has(
        "public-dns-resolvers",
        IndicatorKind::Ipv4,
        "8.8.8.8",
        false
    ));
    assert!(has(
        "public-dns-resolvers",
        IndicatorKind::Ipv4,
        "1.1.1.1",
        false
    ));
    assert!(has(
        "public-dns-resolvers",
        IndicatorKind::Ipv6,
        "2606:4700:4700::1111",
        false
    ));
    for net in [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "127.0.0.0/8",
        "fc00::/7",
    ] {
        assert!(
            has(
                "private-and-special-networks",
                IndicatorKind::Cidr,
                net,
                false
            ),
            "{net}"
        );
    }
    assert!(has(
        "cdn-and-cloud-domains",
        IndicatorKind::Domain,
        "cloudfront.net",
        false
    ));
    assert!(has(
        "cdn-and-cloud-domains",
        IndicatorKind::Domain,
        "akamaiedge.net",
        true
    ));
    // Drills and tests use the documentation ranges as hostile: they must not be listed.
    for e in &entries {
        assert!(
            !["192.0.2.", "198.51.100.", "203.0.113.", "2001:db8:"]
                .iter()
                .any(|p| e.value.starts_with(p)),
            "{e:?}"
        );
    }
}

/// A kept or suppressed match of the golden run, by ids.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Golden {
    indicator: String,
    event: String,
    /// Empty for a kept match.
    suppressed_by: Vec<String>,
}

#[test]
fn golden_suppression_with_a_reload_of_the_lists() {
    let lines: Vec<GoldenLine> = crate::common_a::read_lines("warning_lists", "input.jsonl");
    let mut script = crate::common_a::golden_script::<WarningEntry>(&lines);
    let v1 = parse(DEFAULT_LISTS).unwrap();
    let v2_text =
        std::fs::read_to_string(crate::common_a::golden_dir("warning_lists").join("lists-v2.toml"))
            .unwrap();
    let v2 = parse(&v2_text).unwrap();
    script.extend(v1.iter().map(|e| (1000, Update::C(e.clone(), 1))));
    script.extend(v1.iter().map(|e| (3000, Update::C(e.clone(), -1))));
    script.extend(v2.iter().map(|e| (3000, Update::C(e.clone(), 1))));
    script.sort_by_key(|(t, _)| *t);
    check_golden_at(
        "warning_lists",
        &script,
        &[1000, 2000, 3000],
        3001,
        |events, indicators, entries| {
            split(crate::common_a::golden_matches(events, indicators), entries).map(|o| match o {
                Out::Kept(m) => Golden {
                    indicator: m.indicator.id,
                    event: m.sighting.event_id,
                    suppressed_by: vec![],
                },
                Out::Suppressed(m, lists) => Golden {
                    indicator: m.indicator.id,
                    event: m.sighting.event_id,
                    suppressed_by: lists,
                },
            })
        },
    );
}
