//! Property tests of the egress rule over random (alert, marking, sharing list, recipient) cases:
//! nothing reaches a recipient outside the set TLP 2.0 and the owner allow, no
//! personal data reaches a recipient not entitled to it, and the same inputs
//! give byte-identical payloads.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use schemas::alert::{
    Alert, Contributor, ContributorKind, CountryVictims, IndicatorRef, Provenance, Severity,
};
use schemas::indicator::{IndicatorKind, SourceKind};
use schemas::marking::{Marking, Tlp};
use schemas::sharing::{
    Decision, Interest, PersonalData, Policy, Recipient, RecipientKind, decide, explain,
    marking_allows, personal_values,
};

const IDS: [&str; 6] = [
    "ncb-fr",
    "ncb-de",
    "ncb-ar",
    "ncb-sg",
    "partner-x",
    "desk-lyon",
];
const ORGS: [&str; 5] = ["org-a", "org-b", "ncb-fr", "partner-x", "fusion"];
const COUNTRIES: [&str; 4] = ["FR", "DE", "AR", "SG"];

fn tlp() -> impl Strategy<Value = Tlp> {
    prop_oneof![
        Just(Tlp::Clear),
        Just(Tlp::Green),
        Just(Tlp::Amber),
        Just(Tlp::AmberStrict),
        Just(Tlp::Red)
    ]
}

fn severity() -> impl Strategy<Value = Severity> {
    prop_oneof![
        Just(Severity::Low),
        Just(Severity::Medium),
        Just(Severity::High),
        Just(Severity::Critical)
    ]
}

fn kind() -> impl Strategy<Value = IndicatorKind> {
    prop_oneof![
        Just(IndicatorKind::Ipv4),
        Just(IndicatorKind::Domain),
        Just(IndicatorKind::Email)
    ]
}

fn marking() -> impl Strategy<Value = Marking> {
    let owner = prop_oneof![
        Just("org-a".to_string()),
        Just("org-b".to_string()),
        Just("partner-x".to_string()),
        Just("org-a+org-b".to_string()),
    ];
    let pool: Vec<&str> = IDS
        .iter()
        .chain(ORGS.iter())
        .chain(COUNTRIES.iter())
        .copied()
        .collect();
    let sharing = proptest::sample::subsequence(pool.clone(), 0..=pool.len()).prop_map(|v| {
        let mut v: Vec<String> = v.into_iter().map(String::from).collect();
        v.sort();
        v.dedup();
        v
    });
    (tlp(), owner, sharing).prop_map(|(tlp, owner, sharing)| Marking {
        tlp,
        owner,
        sharing,
    })
}

fn recipient() -> impl Strategy<Value = Recipient> {
    let rkind = prop_oneof![
        Just(RecipientKind::Bureau),
        Just(RecipientKind::Partner),
        Just(RecipientKind::Officer),
        Just(RecipientKind::Public)
    ];
    let interest = (
        proptest::sample::subsequence(COUNTRIES.to_vec(), 0..=2),
        proptest::sample::subsequence(
            vec![
                IndicatorKind::Ipv4,
                IndicatorKind::Domain,
                IndicatorKind::Email,
            ],
            0..=2,
        ),
        proptest::option::of(severity()),
    )
        .prop_map(|(c, kinds, min_severity)| Interest {
            countries: c.into_iter().map(String::from).collect(),
            kinds,
            min_severity,
        });
    (
        proptest::sample::select(IDS.to_vec()),
        rkind,
        proptest::sample::select(ORGS.to_vec()),
        proptest::option::of(proptest::sample::select(COUNTRIES.to_vec())),
        tlp(),
        any::<bool>(),
        proptest::bool::weighted(0.1),
        interest,
    )
        .prop_map(
            |(id, kind, org, country, clearance, personal_data, drill, interest)| Recipient {
                id: id.to_string(),
                kind,
                organisation: org.to_string(),
                country: country.map(String::from),
                clearance,
                personal_data,
                drill,
                interest,
            },
        )
}

/// Contributing sources: none (an alert built by hand), or one to three feeds with
/// their own markings, in which case the alert's marking is their strictest, as the
/// dataflow makes it.
fn contributors() -> impl Strategy<Value = Vec<Contributor>> {
    proptest::collection::vec((marking(), any::<bool>()), 0..=3).prop_map(|ms| {
        ms.into_iter()
            .enumerate()
            .map(|(i, (marking, partner))| Contributor {
                kind: if partner {
                    ContributorKind::Partner
                } else {
                    ContributorKind::Osint
                },
                id: format!("feed-{i}"),
                indicator_id: format!("ind-{i}"),
                confidence: 60,
                reported: schemas::Timestamp::from_second(1_790_000_000).unwrap(),
                marking,
            })
            .collect()
    })
}

fn alert() -> impl Strategy<Value = Alert> {
    (
        (marking(), contributors()),
        severity(),
        kind(),
        0u8..50,
        // Last octets that are prefixes of each other (2, 25, 250) come often: a victim
        // address must not be replaced inside another one.
        proptest::collection::btree_set(
            (
                0u8..4,
                prop_oneof![0u8..=255, proptest::sample::select(vec![2u8, 25, 250])],
            ),
            0..6,
        ),
        proptest::collection::btree_set(0u16..500, 0..4),
        proptest::sample::subsequence(COUNTRIES.to_vec(), 1..=3),
        0u8..5,
        proptest::bool::weighted(0.1),
    )
        .prop_map(
            |(
                (marking, sources),
                severity,
                kind,
                n,
                victims,
                accounts,
                countries,
                title_mode,
                drill,
            )| {
                let victim_ips: Vec<IpAddr> = victims
                    .iter()
                    .map(|&(c, d)| IpAddr::V4(Ipv4Addr::new(10, 200, c, d)))
                    .collect();
                // Each victim was seen by the sensors of one of the alert's countries.
                let mut per_country: std::collections::BTreeMap<&str, Vec<IpAddr>> =
                    std::collections::BTreeMap::new();
                for (&(c, d), ip) in victims.iter().zip(&victim_ips) {
                    let country = countries[usize::from(c ^ d) % countries.len()];
                    per_country.entry(country).or_default().push(*ip);
                }
                let victims_by_country = per_country
                    .into_iter()
                    .map(|(country, victim_ips)| CountryVictims {
                        country: country.to_string(),
                        victim_ips,
                    })
                    .collect();
                let accounts: Vec<String> = accounts
                    .iter()
                    .map(|a| format!("victim{a}@mail.example"))
                    .collect();
                let value = match kind {
                    IndicatorKind::Ipv4 => format!("198.51.100.{n}"),
                    IndicatorKind::Email => format!("actor{n}@evil.example"),
                    _ => format!("c2-{n}.evil.example"),
                };
                // Titles that carry personal data too, to check free text is scrubbed.
                let title = match (title_mode, victim_ips.first(), accounts.first()) {
                    (1, Some(ip), _) => format!("{value} contacted by {ip}"),
                    (2, _, Some(a)) => format!("{value} mailed {a}"),
                    (3, Some(_), _) => format!(
                        "{value} contacted by {}.",
                        victim_ips
                            .iter()
                            .map(|ip| ip.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    _ => format!("{} {value} seen", kind.as_str()),
                };
                let t = |s: i64| schemas::Timestamp::from_second(1_790_000_000 + s).unwrap();
                let marking = sources
                    .iter()
                    .map(|c| c.marking.clone())
                    .reduce(|a, b| a.strictest(&b))
                    .unwrap_or(marking);
                let provenance = Provenance {
                    input_keys: vec![format!("{}:{value}", kind.as_str())],
                    sources,
                    corroborated_confidence: 70,
                };
                Alert {
                    schema_version: 1,
                    id: format!("{:016x}", u64::from(n) * 7919),
                    rule: "indicator_match".to_string(),
                    rule_version: 1,
                    key: format!("ind-{n}"),
                    window_start: t(0),
                    window_end: t(3600),
                    severity,
                    title,
                    indicator: IndicatorRef {
                        id: format!("ind-{n}"),
                        kind,
                        value,
                        source_kind: SourceKind::Partner,
                        source_id: "partner-x".to_string(),
                        confidence: 80,
                        created: t(-100),
                    },
                    marking,
                    first_seen: t(10),
                    last_seen: t(20),
                    sightings: 3,
                    hourly: vec![schemas::HourlySightings {
                        hour: t(0),
                        sightings: 3,
                    }],
                    sensors: 2,
                    victims: victim_ips.len() as u32,
                    victims_by_country,
                    victim_ips,
                    accounts,
                    countries: countries.into_iter().map(String::from).collect(),
                    retroactive_sightings: 0,
                    event_ids: vec!["ev-1".to_string(), "ev-2".to_string()],
                    summarised_sightings: 0,
                    drill,
                    provenance,
                }
            },
        )
}

/// The allowed set written independently of the rule, as TLP 2.0 states it.
fn oracle_allows(m: &Marking, r: &Recipient) -> bool {
    let owners: Vec<&str> = m.owner.split('+').collect();
    let is_sole_owner = owners.len() == 1 && owners[0] == r.organisation;
    // A bureau is also named by its country.
    let named = m.sharing.contains(&r.id)
        || (r.kind == RecipientKind::Bureau
            && r.country.as_ref().is_some_and(|c| m.sharing.contains(c)));
    let listed = named || m.sharing.contains(&r.organisation);
    let community = matches!(r.kind, RecipientKind::Bureau | RecipientKind::Officer);
    let by_tlp = match m.tlp {
        Tlp::Red => named || is_sole_owner,
        Tlp::AmberStrict => is_sole_owner,
        Tlp::Amber => listed || is_sole_owner,
        Tlp::Green => community || listed || is_sole_owner,
        Tlp::Clear => true,
    };
    by_tlp && m.tlp <= r.clearance
}

fn interested(a: &Alert, i: &Interest) -> bool {
    (i.countries.is_empty() || a.countries.iter().any(|c| i.countries.contains(c)))
        && (i.kinds.is_empty() || i.kinds.contains(&a.indicator.kind))
        && i.min_severity.is_none_or(|m| a.severity >= m)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, ..ProptestConfig::default() })]

    #[test]
    fn delivered_exactly_to_the_allowed_set(a in alert(), r in recipient()) {
        let policy = Policy::new(b"test-pseudonym-key".to_vec());
        let every = a.markings().all(|m| oracle_allows(m, &r));
        let allowed = every && a.drill == r.drill && interested(&a, &r.interest);
        let d = decide(&a, &r, &policy);
        prop_assert_eq!(matches!(d, Decision::Deliver(_)), allowed, "decision {:?}", d);
        prop_assert_eq!(marking_allows(a.markings(), &r).is_ok(), every);
        if let Decision::Deliver(_) = d {
            let owners: Vec<&str> = a.marking.owner.split('+').collect();
            let sole = owners.len() == 1 && owners[0] == r.organisation;
            match a.marking.tlp {
                Tlp::Red => prop_assert!(
                    a.marking.sharing.contains(&r.id)
                        || (r.kind == RecipientKind::Bureau
                            && r.country.as_ref().is_some_and(|c| a.marking.sharing.contains(c)))
                        || sole
                ),
                Tlp::AmberStrict => prop_assert!(sole),
                _ => {}
            }
            prop_assert!(a.marking.tlp <= r.clearance);
        }
    }

    #[test]
    fn no_personal_data_to_recipients_not_entitled(a in alert(), r in recipient()) {
        let policy = Policy::new(b"test-pseudonym-key".to_vec());
        // Drop the other checks so every case exercises redaction.
        let r = Recipient { clearance: Tlp::Red, drill: a.drill, interest: Interest::default(), ..r };
        let mut a = a;
        a.marking.tlp = Tlp::Clear;
        for c in &mut a.provenance.sources {
            c.marking.tlp = Tlp::Clear;
        }
        let Decision::Deliver(view) = decide(&a, &r, &policy) else {
            return Err(TestCaseError::fail("CLEAR alert withheld"));
        };
        let text = String::from_utf8(view.to_bytes()).unwrap();
        let personal = personal_values(&a);
        // A national bureau gets the victims its own country's sensors saw, and no other.
        let own: Vec<String> = a
            .victims_by_country
            .iter()
            .filter(|v| r.kind != RecipientKind::Bureau || r.country.as_deref() == Some(&v.country))
            .flat_map(|v| v.victim_ips.iter().map(|ip| ip.to_string()))
            .collect();
        let foreign: Vec<String> = a
            .victim_ips
            .iter()
            .map(|ip| ip.to_string())
            .filter(|ip| !own.contains(ip))
            .collect();
        if r.personal_data {
            prop_assert_eq!(view.personal_data, PersonalData::Clear);
            for v in personal.iter().filter(|v| !foreign.contains(v)) {
                prop_assert!(text.contains(v.as_str()), "{} missing for an entitled recipient", v);
            }
            let mut shown = view.victim_ips.clone();
            shown.sort();
            let mut expected = own.clone();
            expected.sort();
            expected.dedup();
            prop_assert_eq!(shown, expected);
            // Free text keeps the own victims whole, and names no foreign one.
            let words = |t: &str| -> Vec<String> {
                t.split([' ', ',']).map(|w| w.trim_end_matches('.').to_string()).collect()
            };
            let (given, seen) = (words(&a.title), words(&view.title));
            for v in own.iter().filter(|v| given.contains(v)) {
                prop_assert!(seen.contains(v), "{} garbled in {}", v, view.title);
            }
            for v in &foreign {
                prop_assert!(!seen.contains(v), "{} in {}", v, view.title);
                prop_assert!(view.victims_by_country.iter().all(|c| !c.victim_ips.contains(v)));
            }
        } else {
            prop_assert_eq!(view.personal_data, PersonalData::Pseudonymised);
            for v in &personal {
                prop_assert!(!text.contains(v.as_str()), "{} leaked in {}", v, text);
            }
            prop_assert!(view.victim_ips.iter().chain(&view.accounts).all(|p| p.starts_with("pseud:")));
            prop_assert_eq!(view.victim_ips.len(), own.len());
            // The same victim gets the same pseudonym in this recipient's view.
            for ip in &own {
                prop_assert!(view.victim_ips.contains(&policy.pseudonym(&r.id, ip)));
            }
        }
    }

    #[test]
    fn same_inputs_give_byte_identical_payloads(a in alert(), r in recipient()) {
        let policy = Policy::new(b"test-pseudonym-key".to_vec());
        let first = decide(&a, &r, &policy);
        let again = decide(&a.clone(), &r.clone(), &Policy::new(b"test-pseudonym-key".to_vec()));
        match (first, again) {
            (Decision::Deliver(x), Decision::Deliver(y)) => prop_assert_eq!(x.to_bytes(), y.to_bytes()),
            (Decision::Withhold(x), Decision::Withhold(y)) => prop_assert_eq!(x, y),
            _ => return Err(TestCaseError::fail("different decisions for the same inputs")),
        }
        // The explanation agrees with the decision.
        let e = explain(&a, &r, &policy);
        prop_assert_eq!(e.decision, decide(&a, &r, &policy));
    }
}

#[test]
fn explanation_names_every_field() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let a = alert().new_tree(&mut runner).unwrap().current();
    let r = recipient().new_tree(&mut runner).unwrap().current();
    let text = explain(&a, &r, &Policy::new(b"k".to_vec())).to_string();
    for field in [
        "victim_ips",
        "victims_by_country",
        "accounts",
        "title",
        "indicator",
        "marking",
    ] {
        assert!(text.contains(field), "{field} missing from:\n{text}");
    }
    assert!(text.contains("decision: "));
}
