#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

//! Campaigns view: equal to a union-find recomputation at every closed time on 1 and 2
//! workers; golden input and output; ids stable under unrelated changes; hubs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::common_b::{
    Inputs, Rec, Update, View, check_against, present_at, run, script, state_at,
};
use dataflow::Time;
use dataflow::observables::indicator_key;
use dataflow::views::campaigns::{
    CampaignConfig, CampaignMember, Member, campaign_id, campaigns, infrastructure_keys,
};
use differential_dataflow::VecCollection;
use jiff::Timestamp;
use proptest::prelude::*;
use schemas::{EventKind, FileHashes, Indicator, IndicatorKind, SensorEvent, SourceKind, Tlp};

struct Campaigns(CampaignConfig);

impl View for Campaigns {
    type Out = CampaignMember;
    fn build<'s>(&self, i: Inputs<'s>) -> VecCollection<'s, Time, CampaignMember> {
        campaigns(i.events, i.indicators, self.0)
    }
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap()
}

const IPS: [&str; 6] = [
    "10.0.0.1",
    "10.0.0.2",
    "10.0.1.3",
    "192.0.2.1",
    "192.0.2.2",
    "2001:db8::1",
];
const DOMAINS: [&str; 5] = [
    "a.evil.example",
    "b.evil.example",
    "evil.example",
    "x.other.example",
    "cdn.example",
];
const KINDS: [EventKind; 5] = [
    EventKind::Dns,
    EventKind::Http,
    EventKind::Flow,
    EventKind::Sinkhole,
    EventKind::Darknet,
];
const IND_VALUES: [(IndicatorKind, &str); 10] = [
    (IndicatorKind::Ipv4, "10.0.0.1"),
    (IndicatorKind::Ipv4, "192.0.2.1"),
    (IndicatorKind::Cidr, "10.0.0.0/16"),
    (IndicatorKind::Cidr, "192.0.2.0/24"),
    (IndicatorKind::Cidr, "2001:db8::/32"),
    (IndicatorKind::Domain, "evil.example"),
    (IndicatorKind::Domain, "other.example"),
    (IndicatorKind::Domain, "a.evil.example"),
    (
        IndicatorKind::Sha256,
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ),
    (IndicatorKind::Url, "http://a.evil.example/p"),
];

#[allow(clippy::too_many_arguments)]
fn event(
    n: usize,
    kind: usize,
    src: Option<usize>,
    dst: Option<usize>,
    victim_is_src: bool,
    dom: Option<usize>,
    url: bool,
    hash: Option<usize>,
) -> SensorEvent {
    let ip = |i: usize| IPS[i % IPS.len()].parse::<IpAddr>().unwrap();
    let domain = dom.map(|d| DOMAINS[d % DOMAINS.len()].to_string());
    SensorEvent {
        schema_version: 1,
        event_id: format!("e{n}"),
        sensor_id: "s1".into(),
        country: "FR".into(),
        observed_at: ts(1_790_000_000_000),
        kind: KINDS[kind % KINDS.len()],
        src_ip: src.map(ip),
        src_port: None,
        dst_ip: dst.map(ip),
        dst_port: None,
        proto: None,
        url: url.then(|| format!("http://{}/p", domain.as_deref().unwrap_or("u.evil.example"))),
        domain,
        file_hashes: FileHashes {
            sha256: hash.map(|h| ["a", "b"][h % 2].repeat(64)),
            ..FileHashes::default()
        },
        email: None,
        wallet: None,
        victim_ip: if victim_is_src { src.map(ip) } else { None },
        signature: None,
        purchase: None,
    }
}

fn indicator(id: &str, kind: IndicatorKind, value: &str) -> Indicator {
    Indicator {
        schema_version: 1,
        id: id.to_string(),
        kind,
        value: value.to_string(),
        owner: "partner-a".into(),
        source_kind: SourceKind::Partner,
        source_id: "partner-a".into(),
        tlp: Tlp::Amber,
        sharing: vec!["FR".into()],
        confidence: 80,
        created: ts(1_790_000_000_000),
        modified: ts(1_790_000_000_000),
        valid_from: ts(1_790_000_000_000),
        valid_until: None,
        revoked: false,
        labels: vec![],
    }
}

/// Union-find over members.
struct Components {
    parent: BTreeMap<Member, Member>,
}

impl Components {
    fn find(&mut self, m: &Member) -> Member {
        let p = self
            .parent
            .entry(m.clone())
            .or_insert_with(|| m.clone())
            .clone();
        if &p == m {
            return p;
        }
        let root = self.find(&p);
        self.parent.insert(m.clone(), root.clone());
        root
    }

    fn union(&mut self, a: &Member, b: &Member) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent.insert(ra, rb);
        }
    }
}

/// True if `ip` lies in the network `cidr` (by bits, independently of the view's keys).
fn in_network(ip: IpAddr, cidr: &str) -> bool {
    let (net, len) = cidr.split_once('/').unwrap();
    let len: u32 = len.parse().unwrap();
    match (ip, net.parse::<IpAddr>().unwrap()) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            len == 0 || (u32::from(a) ^ u32::from(n)) >> (32 - len) == 0
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            len == 0 || (u128::from(a) ^ u128::from(n)) >> (128 - len) == 0
        }
        _ => false,
    }
}

/// Brute force: the campaign members implied by the records present at `time`.
fn oracle(updates: &[Update], time: Time, max_degree: u64) -> BTreeSet<CampaignMember> {
    let present = present_at(updates, time);
    let events: BTreeSet<&SensorEvent> = present
        .iter()
        .filter_map(|r| match r {
            Rec::Event(e) => Some(e),
            _ => None,
        })
        .collect();
    let indicators: BTreeSet<&Indicator> = present
        .iter()
        .filter_map(|r| match r {
            Rec::Indicator(i) => Some(i),
            _ => None,
        })
        .collect();
    let sets: Vec<Vec<String>> = events.iter().map(|e| infrastructure_keys(e)).collect();
    let mut neighbours: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for set in &sets {
        for a in set {
            for b in set.iter().filter(|b| *b != a) {
                neighbours.entry(a).or_default().insert(b);
            }
        }
    }
    let hub = |k: &str| neighbours.get(k).map_or(0, BTreeSet::len) as u64 > max_degree;
    let obs = |k: &str| Member::Observable(k.to_string());
    let mut uf = Components {
        parent: BTreeMap::new(),
    };
    let mut linked: BTreeSet<Member> = BTreeSet::new();
    let mut link = |uf: &mut Components, a: Member, b: Member| {
        uf.union(&a, &b);
        linked.insert(a);
        linked.insert(b);
    };
    for set in &sets {
        let kept: Vec<&String> = set.iter().filter(|k| !hub(k)).collect();
        for k in kept.iter().skip(1) {
            link(&mut uf, obs(kept[0]), obs(k));
        }
        for k in set {
            for i in &indicators {
                let parent = match (k.split_once(':').unwrap(), i.kind) {
                    (("domain", d), IndicatorKind::Domain) => d.ends_with(&format!(".{}", i.value)),
                    (("ip", ip), IndicatorKind::Cidr) => in_network(ip.parse().unwrap(), &i.value),
                    _ => false,
                };
                if parent {
                    link(&mut uf, obs(k), obs(&indicator_key(i.kind, &i.value)));
                }
            }
        }
    }
    for i in &indicators {
        link(
            &mut uf,
            Member::Indicator(i.id.clone()),
            obs(&indicator_key(i.kind, &i.value)),
        );
    }
    let mut groups: BTreeMap<Member, Vec<Member>> = BTreeMap::new();
    for m in linked {
        groups.entry(uf.find(&m)).or_default().push(m);
    }
    groups
        .into_values()
        .filter(|ms| ms.iter().any(|m| matches!(m, Member::Indicator(_))))
        .flat_map(|ms| {
            let id = campaign_id(ms.iter().map(Member::node).min().unwrap());
            ms.into_iter().map(move |member| CampaignMember {
                campaign: id.clone(),
                member,
            })
        })
        .collect()
}

fn record() -> impl Strategy<Value = Rec> {
    prop_oneof![
        3 => (
            (0..100usize, 0..KINDS.len(), proptest::option::of(0..IPS.len()), proptest::option::of(0..IPS.len())),
            (any::<bool>(), proptest::option::of(0..DOMAINS.len()), proptest::bool::weighted(0.3), proptest::option::weighted(0.2, 0..2usize)),
        )
            .prop_map(|((n, kind, src, dst), (victim, dom, url, hash))| {
                Rec::Event(event(n, kind, src, dst, victim, dom, url, hash))
            }),
        2 => (0..3usize, 0..IND_VALUES.len()).prop_map(|(id, v)| {
            let (kind, value) = IND_VALUES[v];
            Rec::Indicator(indicator(&format!("ind-{id}"), kind, value))
        }),
    ]
}

fn check(updates: &[Update], workers: usize, max_degree: u64) -> Result<(), TestCaseError> {
    let out = run(Campaigns(CampaignConfig { max_degree }), updates, workers);
    check_against(updates, &out, workers, |t| oracle(updates, t, max_degree))
        .map_err(TestCaseError::fail)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn campaigns_equal_union_find_at_every_time(
        pool in proptest::collection::vec(record(), 1..10),
        ops in proptest::collection::vec((0..64usize, proptest::bool::weighted(0.3), any::<u8>()), 1..24),
        max_degree in 1u64..6,
    ) {
        let updates = script(&pool, &ops);
        check(&updates, 1, max_degree)?;
        check(&updates, 2, max_degree)?;
    }
}

fn members_of(state: &BTreeMap<CampaignMember, isize>) -> BTreeMap<String, BTreeSet<Member>> {
    let mut out: BTreeMap<String, BTreeSet<Member>> = BTreeMap::new();
    for m in state.keys() {
        out.entry(m.campaign.clone())
            .or_default()
            .insert(m.member.clone());
    }
    out
}

fn at(time: Time, rec: Rec) -> Update {
    Update { time, diff: 1, rec }
}

#[test]
fn campaign_id_is_unchanged_when_an_unrelated_component_is_added() {
    // Campaign A: an indicator on 10.0.0.1, seen with b.evil.example.
    let a_event = event(1, 1, None, Some(0), false, Some(1), false, None);
    // Component B: indicator on x.other.example's parent, seen with 192.0.2.2; shares nothing with A.
    let b_event = event(2, 0, None, Some(4), false, Some(3), false, None);
    let updates = vec![
        at(1, Rec::Event(a_event)),
        at(
            1,
            Rec::Indicator(indicator("ind-a", IndicatorKind::Ipv4, "10.0.0.1")),
        ),
        at(2, Rec::Event(b_event)),
        at(
            2,
            Rec::Indicator(indicator("ind-b", IndicatorKind::Domain, "other.example")),
        ),
    ];
    for workers in [1, 2] {
        let out = run(Campaigns(CampaignConfig::default()), &updates, workers);
        let before = members_of(&state_at(&out, 1));
        let after = members_of(&state_at(&out, 2));
        assert_eq!(before.len(), 1);
        assert_eq!(after.len(), 2, "B is a campaign of its own");
        let (id, members) = before.iter().next().unwrap();
        assert_eq!(
            after.get(id),
            Some(members),
            "A keeps its id and members when B appears"
        );
        assert!(members.contains(&Member::Observable("domain:b.evil.example".into())));
        // B's members got an id of their own.
        let b = after.iter().find(|(k, _)| *k != id).unwrap().1;
        assert!(b.contains(&Member::Indicator("ind-b".into())));
        assert!(b.contains(&Member::Observable("ip:192.0.2.2".into())));
    }
}

#[test]
fn a_hub_does_not_merge_campaigns() {
    // Two indicated domains resolved through one resolver (192.0.2.1), plus a third
    // domain on it: the resolver co-occurs with three domains.
    let dns = |n: usize, dom: usize| event(n, 0, Some(0), Some(3), true, Some(dom), false, None);
    let updates = vec![
        at(1, Rec::Event(dns(1, 0))), // a.evil.example
        at(1, Rec::Event(dns(2, 3))), // x.other.example
        at(1, Rec::Event(dns(3, 4))), // cdn.example
        at(
            1,
            Rec::Indicator(indicator("ind-a", IndicatorKind::Domain, "a.evil.example")),
        ),
        at(
            1,
            Rec::Indicator(indicator("ind-x", IndicatorKind::Domain, "other.example")),
        ),
    ];
    let campaigns_with = |max_degree| {
        members_of(&state_at(
            &run(Campaigns(CampaignConfig { max_degree }), &updates, 2),
            1,
        ))
    };
    let merged = campaigns_with(3);
    assert_eq!(
        merged.len(),
        1,
        "degree 3 is not above 3: the resolver links"
    );
    assert!(
        merged
            .values()
            .next()
            .unwrap()
            .contains(&Member::Observable("domain:cdn.example".into()))
    );
    let apart = campaigns_with(2);
    assert_eq!(apart.len(), 2, "a hub links nothing: two campaigns");
    for members in apart.values() {
        assert!(!members.contains(&Member::Observable("ip:192.0.2.1".into())));
        assert!(!members.contains(&Member::Observable("domain:cdn.example".into())));
        assert!(
            !members.contains(&Member::Observable("ip:10.0.0.1".into())),
            "victims are not members"
        );
    }
}

#[test]
fn golden_campaigns() {
    crate::common_b::golden("campaigns", || Campaigns(CampaignConfig { max_degree: 3 }));
}
