//! Campaigns: connected components over shared infrastructure.
//!
//! The graph's nodes are observables (by the 64-bit [`key_hash`] of their match key,
//! such as `domain:evil.example` or `ip:198.51.100.7`) and indicators (by the hash of
//! `indicator:<id>`). Its edges:
//!
//! - **co-occurrence**: the infrastructure observables of one sensor event
//!   ([`infrastructure_keys`]) are linked together: a DNS event links its domain and
//!   resolver address, an HTTP event its URL, host and server address, a file event
//!   its hashes and server address;
//! - **indicator**: an indicator is linked to the observable it names;
//! - **containment**: an event's domain is linked to each parent domain, and an
//!   event's address to each network, that some indicator names, so an indicator on
//!   `evil.example` or `198.51.100.0/24` joins the infrastructure it matches, as in
//!   [`crate::matching`].
//!
//! The indicator type carries no bundle, report or relationship reference, so
//! indicators are linked only through the observables they name.
//!
//! A component is a **campaign** if it holds at least one indicator; its id is the
//! smallest node hash in it, as 16 hex digits ([`campaign_id`]). Components are
//! found by differential's label propagation (`propagate`: an iterative join of the
//! labels with the edges and a reduce keeping the smallest label per node), so an id
//! depends only on the members of its own component: adding or removing an unrelated
//! component never renames a campaign. An id changes only when the component itself
//! changes its smallest member: when two campaigns merge (the merged one keeps the
//! smaller id) or when a member is added or removed whose hash is the smallest.
//!
//! **Hubs.** A public resolver or a CDN address co-occurs with everything and would
//! merge unrelated campaigns. The degree of an observable is the number of distinct
//! other observables it co-occurs with in the events present; an observable whose
//! degree exceeds [`CampaignConfig::max_degree`] is a hub and its co-occurrence
//! edges are dropped (the other observables of those events stay linked together).
//! A hub keeps its indicator and containment edges: it never bridges two events,
//! but an indicator on it still forms a campaign with it. Known-benign values are
//! also suppressed by the warning lists view upstream.
//!
//! **What is not infrastructure.** Victims are not linked: the event's `victim_ip`,
//! the source of a sinkhole connection (an infected machine), the sinkhole itself,
//! the destination of a darknet hit (unused address space) and e-mail addresses seen
//! by sensors (accounts, personal data) are not nodes of an event. E-mail addresses
//! named by indicators are.
//!
//! Events and indicators are sets here: a record present twice counts once. The
//! caller passes the current indicators ([`crate::indicators::current`]); validity
//! windows are not considered (a campaign is about infrastructure, not when it was
//! used).
//!
//! Cost: the degree count expands each distinct set of event observables into its
//! ordered pairs (at most 9 observables per event, so at most 72 pairs); the graph
//! itself links each set as a star on its smallest non-hub member.

use std::net::IpAddr;

use differential_dataflow::VecCollection;
use differential_dataflow::algorithms::graphs::propagate::propagate;
use schemas::{EventKind, Indicator, SensorEvent};
use serde::{Deserialize, Serialize};

use crate::Time;
use crate::observables::{
    artifact_keys, cidr_key, indicator_key, indicator_key_hash, key_hash, url_host,
};

/// The degree above which an observable is a hub, by default.
pub const DEFAULT_MAX_DEGREE: u64 = 1_000;

/// Settings of the campaigns view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignConfig {
    /// An observable co-occurring with more than this many distinct other observables
    /// is a hub: it links nothing through events.
    pub max_degree: u64,
}

impl Default for CampaignConfig {
    fn default() -> Self {
        Self {
            max_degree: DEFAULT_MAX_DEGREE,
        }
    }
}

/// A member of a campaign.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Member {
    /// An observable, by its match key (`domain:evil.example`, `ip:198.51.100.7`, `cidr:…`).
    Observable(String),
    /// An indicator, by its id.
    Indicator(String),
}

impl Member {
    /// The node hash of the member: [`key_hash`] of its key, or of `indicator:<id>`.
    pub fn node(&self) -> u64 {
        match self {
            Member::Observable(key) => key_hash(key),
            Member::Indicator(id) => indicator_node(id),
        }
    }
}

/// One member of one campaign: the output of the view.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CampaignMember {
    /// The campaign id ([`campaign_id`] of its smallest node hash).
    pub campaign: String,
    /// The member.
    pub member: Member,
}

/// The id of the campaign whose smallest node hash is `min_node`: 16 hex digits.
pub fn campaign_id(min_node: u64) -> String {
    format!("{min_node:016x}")
}

/// The node hash of the indicator `id`.
pub fn indicator_node(id: &str) -> u64 {
    key_hash(&format!("indicator:{id}"))
}

/// The addresses of the event that are infrastructure rather than victims or our own
/// sensors: source and destination, except the victim, the sinkhole connection's
/// ends and the darknet's destination.
pub fn infrastructure_ips(ev: &SensorEvent) -> Vec<IpAddr> {
    let (src, dst) = match ev.kind {
        // An infected machine connecting to our sinkhole: neither end is the campaign's.
        EventKind::Sinkhole => (None, None),
        // The destination is unused space watched by the telescope.
        EventKind::Darknet => (ev.src_ip, None),
        _ => (ev.src_ip, ev.dst_ip),
    };
    let mut ips: Vec<IpAddr> = [src, dst]
        .into_iter()
        .flatten()
        .filter(|ip| Some(*ip) != ev.victim_ip)
        .collect();
    ips.sort_unstable();
    ips.dedup();
    ips
}

/// The match keys of the event's infrastructure observables, sorted and without
/// duplicates: its [`infrastructure_ips`], its domain and URL host (not their
/// parents), its URL, file hashes and wallet.
pub fn infrastructure_keys(ev: &SensorEvent) -> Vec<String> {
    let mut keys: Vec<String> = infrastructure_ips(ev)
        .iter()
        .map(|ip| format!("ip:{ip}"))
        .collect();
    if let Some(d) = &ev.domain {
        keys.push(format!("domain:{d}"));
    }
    if let Some(host) = ev
        .url
        .as_deref()
        .and_then(url_host)
        .filter(|h| h.parse::<IpAddr>().is_err())
    {
        keys.push(format!("domain:{host}"));
    }
    keys.extend(artifact_keys(ev));
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The proper parent domains of a domain: `a.b.c` gives `b.c` and `c`.
fn parent_domains(domain: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(domain.split_once('.').map(|(_, p)| p), |d| {
        d.split_once('.').map(|(_, p)| p)
    })
    .filter(|p| !p.is_empty())
}

/// The campaigns among `events` and the current `indicators`: one record per member.
pub fn campaigns<'s>(
    events: VecCollection<'s, Time, SensorEvent>,
    indicators: VecCollection<'s, Time, Indicator>,
    config: CampaignConfig,
) -> VecCollection<'s, Time, CampaignMember> {
    let max_degree = config.max_degree;
    // Distinct sets of infrastructure keys: many events share one (a domain and its address).
    let sets = events
        .map(|ev| infrastructure_keys(&ev))
        .filter(|keys| !keys.is_empty())
        .distinct();
    let hash_sets = sets
        .clone()
        .map(|keys| {
            let mut hashes: Vec<u64> = keys.iter().map(|k| key_hash(k)).collect();
            hashes.sort_unstable();
            hashes.dedup();
            hashes
        })
        .distinct();

    // Hubs: observables co-occurring with more than `max_degree` others.
    let hubs = hash_sets
        .clone()
        .flat_map(|hashes| {
            let pairs: Vec<(u64, u64)> = hashes
                .iter()
                .flat_map(|a| {
                    hashes
                        .iter()
                        .filter(move |b| *b != a)
                        .map(move |b| (*a, *b))
                })
                .collect();
            pairs
        })
        .distinct()
        .map(|(a, _)| a)
        .count()
        .filter(move |(_, degree)| u64::try_from(*degree).unwrap_or(0) > max_degree)
        .map(|(node, _)| node);

    // Co-occurrence: each set, hubs removed, as a star on its smallest member.
    let co_occurrence = hash_sets
        .flat_map(|hashes| hashes.clone().into_iter().map(move |h| (h, hashes.clone())))
        .antijoin(hubs)
        .map(|(h, set)| (set, h))
        .reduce_named(
            "CampaignStar",
            |_set, members: &[(&u64, isize)], out: &mut Vec<((u64, u64), isize)>| {
                if let Some((first, rest)) = members.split_first() {
                    for (m, _) in rest {
                        out.push(((*first.0, **m), 1));
                    }
                }
            },
        )
        .map(|(_, edge)| edge);

    // Containment: an event's domain or address in a parent or network some indicator names.
    let indicator_keys = indicators
        .clone()
        .map(|i| indicator_key_hash(i.kind, &i.value))
        .distinct();
    let parent_domains = sets.clone().flat_map(|keys| {
        let mut out = Vec::new();
        for key in &keys {
            if let Some(d) = key.strip_prefix("domain:") {
                let child = key_hash(key);
                out.extend(parent_domains(d).map(|p| (key_hash(&format!("domain:{p}")), child)));
            }
        }
        out
    });
    let prefixes = indicators
        .clone()
        .flat_map(|i| crate::matching::cidr_prefix(&i))
        .distinct();
    let networks = sets
        .clone()
        .flat_map(|keys| {
            keys.iter()
                .filter_map(|k| {
                    let ip: IpAddr = k.strip_prefix("ip:")?.parse().ok()?;
                    Some((ip.is_ipv6(), (ip, key_hash(k))))
                })
                .collect::<Vec<_>>()
        })
        .join_map(prefixes, |_family, (ip, child), len| {
            cidr_key(*ip, *len).map(|net| (key_hash(&net), *child))
        })
        .flat_map(|edge| edge);
    let containment = parent_domains
        .concat(networks)
        .distinct()
        .semijoin(indicator_keys)
        .map(|(parent, child)| (child, parent));

    // Each indicator is linked to the observable it names.
    let named = indicators
        .clone()
        .map(|i| (indicator_node(&i.id), indicator_key_hash(i.kind, &i.value)));

    let edges = co_occurrence
        .concat(containment)
        .concat(named)
        .flat_map(|(a, b)| [(a, b), (b, a)])
        .distinct();
    let nodes = edges.clone().map(|(a, _)| (a, a)).distinct();
    let labels = propagate(edges, nodes);

    // Campaigns: the components holding an indicator.
    let indicator_nodes = indicators.clone().map(|i| indicator_node(&i.id)).distinct();
    let campaign_labels = labels
        .clone()
        .semijoin(indicator_nodes)
        .map(|(_, label)| label)
        .distinct();

    // Names of the nodes: observable keys and indicator ids.
    let names = sets
        .flat_map(|keys| {
            keys.into_iter()
                .map(|k| (key_hash(&k), Member::Observable(k)))
                .collect::<Vec<_>>()
        })
        .concat(indicators.flat_map(|i| {
            let key = indicator_key(i.kind, &i.value);
            [
                (key_hash(&key), Member::Observable(key)),
                (indicator_node(&i.id), Member::Indicator(i.id)),
            ]
        }))
        .distinct();

    labels
        .map(|(node, label)| (label, node))
        .semijoin(campaign_labels)
        .map(|(label, node)| (node, label))
        .join_map(names, |_node, label, member| CampaignMember {
            campaign: campaign_id(*label),
            member: member.clone(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::FileHashes;

    fn event(kind: EventKind) -> SensorEvent {
        SensorEvent {
            schema_version: 1,
            event_id: "e".into(),
            sensor_id: "s".into(),
            country: "FR".into(),
            observed_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            kind,
            src_ip: Some("10.0.0.1".parse().unwrap()),
            src_port: None,
            dst_ip: Some("198.51.100.7".parse().unwrap()),
            dst_port: None,
            proto: None,
            domain: Some("a.evil.example".into()),
            url: Some("http://cdn.evil.example/x".into()),
            file_hashes: FileHashes {
                md5: Some("0".repeat(32)),
                ..FileHashes::default()
            },
            email: Some("bob@victim.example".into()),
            wallet: None,
            victim_ip: Some("10.0.0.1".parse().unwrap()),
            signature: None,
            purchase: None,
        }
    }

    #[test]
    fn infrastructure_leaves_out_victims_parents_and_accounts() {
        assert_eq!(
            infrastructure_keys(&event(EventKind::Http)),
            vec![
                "domain:a.evil.example",
                "domain:cdn.evil.example",
                "ip:198.51.100.7",
                "md5:00000000000000000000000000000000",
                "url:http://cdn.evil.example/x",
            ]
        );
    }

    #[test]
    fn sinkhole_and_darknet_ends_are_not_infrastructure() {
        assert!(infrastructure_ips(&event(EventKind::Sinkhole)).is_empty());
        let mut darknet = event(EventKind::Darknet);
        darknet.victim_ip = None;
        assert_eq!(
            infrastructure_ips(&darknet),
            vec!["10.0.0.1".parse::<IpAddr>().unwrap()],
            "the scanner counts, the telescope's address does not"
        );
    }

    #[test]
    fn parents_exclude_the_domain_itself() {
        let p: Vec<&str> = parent_domains("a.b.evil.example").collect();
        assert_eq!(p, vec!["b.evil.example", "evil.example", "example"]);
        assert_eq!(parent_domains("example").count(), 0);
    }

    #[test]
    fn campaign_ids_are_sixteen_hex_digits_of_the_smallest_node() {
        assert_eq!(campaign_id(0xab), "00000000000000ab");
        assert_eq!(Member::Indicator("i1".into()).node(), indicator_node("i1"));
        assert_ne!(
            Member::Indicator("ip:1".into()).node(),
            Member::Observable("ip:1".into()).node()
        );
    }
}
