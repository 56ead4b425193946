//! Ground truth of a scenario and the matcher that keeps it exact.
//!
//! The truth is computed from the records actually emitted, not from the plan: every
//! planted indicator version and every event that touches campaign infrastructure goes
//! through [`Matcher`], a plain indexed matcher with Fusion's rules:
//!
//! - an event matches an indicator when one of its observables (source, destination and
//!   victim address, the domain and each parent domain of it, the host of its URL and
//!   each parent of that, the URL, file hashes, e-mail, wallet) equals the indicator's
//!   value, or one of its addresses lies inside the indicator's CIDR range;
//! - the latest version of an indicator wins; a revoked latest version matches nothing;
//! - the event must lie in the validity window, `valid_from <= observed_at < valid_until`;
//! - a match is retroactive when the event happened before the indicator's `created`.
//!
//! Benign events are not fed to the matcher: their value spaces are disjoint from the
//! malicious ones by construction (see [`crate::world`]); the tests check that with an
//! independent brute-force oracle over every decoded record.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use schemas::{Indicator, IndicatorKind, SensorEvent, SourceKind};
use serde::Serialize;

/// What the generator planted and what Fusion must find, for the records emitted so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Truth {
    /// The seed of the scenario.
    pub seed: u64,
    /// Campaigns planted so far, in the order they started.
    pub campaigns: Vec<Campaign>,
    /// Every (event id, indicator id) pair that must produce a match at the end of the stream.
    pub expected_matches: BTreeSet<(String, String)>,
    /// The subset of `expected_matches` where the event happened before the indicator was created.
    pub retroactive: BTreeSet<(String, String)>,
    /// Pairs whose event carries the indicator's value at or after its `valid_until`: not matches.
    pub expired: BTreeSet<(String, String)>,
    /// Indicators whose latest version is revoked; none of their pairs is in `expected_matches`.
    pub revoked_indicators: BTreeSet<String>,
    /// Number of deliberately bad payloads emitted.
    pub bad_records: u64,
    /// Bad payloads per kind of damage (see [`crate::BadKind`]).
    pub bad_records_by_kind: BTreeMap<String, u64>,
}

impl Truth {
    /// Expected matches that are live: the event happened at or after the indicator's creation.
    pub fn live(&self) -> impl Iterator<Item = &(String, String)> {
        self.expected_matches.difference(&self.retroactive)
    }
}

/// One planted campaign.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Campaign {
    /// Campaign id, `campaign-00042`.
    pub id: String,
    /// Malware family it is labelled with.
    pub family: String,
    /// The partner or OSINT feed that publishes its indicators.
    pub publisher: String,
    /// Whether the publisher is a partner or an OSINT feed.
    pub source_kind: SourceKind,
    /// Planned event time of the first hit (Unix ms).
    pub start_ms: i64,
    /// Planned release time of the indicators (Unix ms).
    pub release_ms: i64,
    /// Planned event time of the end of the campaign (Unix ms).
    pub end_ms: i64,
    /// Countries whose sensors it targets.
    pub countries: Vec<String>,
    /// Its infrastructure; items with an `indicator_id` are published as indicators.
    pub infrastructure: Vec<Infrastructure>,
    /// Events emitted so far that touch its infrastructure.
    pub hits: u64,
}

/// One piece of campaign infrastructure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Infrastructure {
    /// Kind of the value.
    pub kind: IndicatorKind,
    /// The normalized value.
    pub value: String,
    /// Id of the indicator that publishes it; none if it is never published.
    pub indicator_id: Option<String>,
    /// Ids of OSINT indicators that list the same value later (corroboration).
    pub corroborating_ids: Vec<String>,
    /// Whether a version of that indicator has been emitted yet.
    pub published: bool,
}

/// Keys of observables that match by equality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ValueKind {
    Domain,
    Url,
    Hash,
    Email,
    Wallet,
}

/// Where an indicator sits in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum IndexKey {
    Value(ValueKind, String),
    Ip(IpAddr),
    Net(IpAddr, u8),
    /// A value that cannot match anything (never produced by a valid indicator).
    Nothing,
}

#[derive(Debug, Clone)]
struct IndicatorState {
    key: IndexKey,
    valid_from: i64,
    valid_until: Option<i64>,
    created: i64,
    revoked: bool,
}

impl IndicatorState {
    fn classify(&self, at: i64) -> Option<Class> {
        if self.revoked || at < self.valid_from {
            None
        } else if self.valid_until.is_some_and(|u| at >= u) {
            Some(Class::Expired)
        } else if at < self.created {
            Some(Class::Retroactive)
        } else {
            Some(Class::Live)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Live,
    Retroactive,
    Expired,
}

/// Incremental matcher over planted indicators and the events that hit campaign
/// infrastructure; keeps a [`Truth`]'s match sets exact as records are emitted.
#[derive(Debug, Default)]
pub(crate) struct Matcher {
    indicators: BTreeMap<String, IndicatorState>,
    by_value: BTreeMap<(ValueKind, String), BTreeSet<String>>,
    by_ip: BTreeMap<IpAddr, BTreeSet<String>>,
    by_net: BTreeMap<(IpAddr, u8), BTreeSet<String>>,
    /// Prefix lengths present among CIDR indicators, with `true` for IPv6.
    net_lens: BTreeMap<(bool, u8), usize>,
    /// Event id and event time of every event fed in.
    events: Vec<(String, i64)>,
    obs_value: BTreeMap<(ValueKind, String), Vec<u32>>,
    obs_ip: BTreeMap<IpAddr, Vec<u32>>,
    /// Events currently paired with each indicator (matched or expired).
    pairs: BTreeMap<String, Vec<u32>>,
}

impl Matcher {
    /// Applies a new version of an indicator: its previous pairs are withdrawn and
    /// recomputed against every event seen so far.
    pub(crate) fn on_indicator(&mut self, ind: &Indicator, truth: &mut Truth) {
        if let Some(old) = self.indicators.remove(&ind.id) {
            self.unindex(&old.key, &ind.id);
        }
        for idx in self.pairs.remove(&ind.id).unwrap_or_default() {
            if let Some((ev, _)) = self.events.get(idx as usize) {
                let pair = (ev.clone(), ind.id.clone());
                truth.expected_matches.remove(&pair);
                truth.retroactive.remove(&pair);
                truth.expired.remove(&pair);
            }
        }
        let state = IndicatorState {
            key: index_key(ind),
            valid_from: ind.valid_from.as_millisecond(),
            valid_until: ind.valid_until.map(|t| t.as_millisecond()),
            created: ind.created.as_millisecond(),
            revoked: ind.revoked,
        };
        if ind.revoked {
            truth.revoked_indicators.insert(ind.id.clone());
        } else {
            truth.revoked_indicators.remove(&ind.id);
            let mut candidates = BTreeSet::new();
            match &state.key {
                IndexKey::Value(k, v) => {
                    if let Some(list) = self.obs_value.get(&(*k, v.clone())) {
                        candidates.extend(list.iter().copied());
                    }
                }
                IndexKey::Ip(ip) => {
                    if let Some(list) = self.obs_ip.get(ip) {
                        candidates.extend(list.iter().copied());
                    }
                }
                IndexKey::Net(net, len) => {
                    if let Some(last) = last_address(*net, *len) {
                        for list in self.obs_ip.range(*net..=last).map(|(_, l)| l) {
                            candidates.extend(list.iter().copied());
                        }
                    }
                }
                IndexKey::Nothing => {}
            }
            for idx in candidates {
                if let Some((ev, at)) = self.events.get(idx as usize)
                    && let Some(class) = state.classify(*at)
                {
                    record(truth, ev, &ind.id, class);
                    self.pairs.entry(ind.id.clone()).or_default().push(idx);
                }
            }
        }
        self.index(&state.key, &ind.id);
        self.indicators.insert(ind.id.clone(), state);
    }

    /// Records an event and pairs it with every indicator it matches now.
    pub(crate) fn on_event(&mut self, ev: &SensorEvent, truth: &mut Truth) {
        let Ok(idx) = u32::try_from(self.events.len()) else {
            return;
        };
        let at = ev.observed_at.as_millisecond();
        self.events.push((ev.event_id.clone(), at));

        let (values, ips) = observables(ev);
        let mut candidates: BTreeSet<&String> = BTreeSet::new();
        for key in &values {
            if let Some(ids) = self.by_value.get(key) {
                candidates.extend(ids);
            }
        }
        for ip in &ips {
            if let Some(ids) = self.by_ip.get(ip) {
                candidates.extend(ids);
            }
            for &(v6, len) in self.net_lens.keys() {
                if v6 == ip.is_ipv6()
                    && let Some(net) = schemas::indicator::mask(*ip, len)
                    && let Some(ids) = self.by_net.get(&(net, len))
                {
                    candidates.extend(ids);
                }
            }
        }
        for id in candidates {
            if let Some(class) = self.indicators.get(id).and_then(|s| s.classify(at)) {
                record(truth, &ev.event_id, id, class);
                self.pairs.entry(id.clone()).or_default().push(idx);
            }
        }
        for key in values {
            self.obs_value.entry(key).or_default().push(idx);
        }
        for ip in ips {
            self.obs_ip.entry(ip).or_default().push(idx);
        }
    }

    fn index(&mut self, key: &IndexKey, id: &str) {
        match key {
            IndexKey::Value(k, v) => {
                self.by_value
                    .entry((*k, v.clone()))
                    .or_default()
                    .insert(id.to_string());
            }
            IndexKey::Ip(ip) => {
                self.by_ip.entry(*ip).or_default().insert(id.to_string());
            }
            IndexKey::Net(net, len) => {
                self.by_net
                    .entry((*net, *len))
                    .or_default()
                    .insert(id.to_string());
                *self.net_lens.entry((net.is_ipv6(), *len)).or_default() += 1;
            }
            IndexKey::Nothing => {}
        }
    }

    fn unindex(&mut self, key: &IndexKey, id: &str) {
        match key {
            IndexKey::Value(k, v) => {
                let k = (*k, v.clone());
                if let Some(ids) = self.by_value.get_mut(&k) {
                    ids.remove(id);
                    if ids.is_empty() {
                        self.by_value.remove(&k);
                    }
                }
            }
            IndexKey::Ip(ip) => {
                if let Some(ids) = self.by_ip.get_mut(ip) {
                    ids.remove(id);
                    if ids.is_empty() {
                        self.by_ip.remove(ip);
                    }
                }
            }
            IndexKey::Net(net, len) => {
                if let Some(ids) = self.by_net.get_mut(&(*net, *len)) {
                    ids.remove(id);
                    if ids.is_empty() {
                        self.by_net.remove(&(*net, *len));
                    }
                }
                let lk = (net.is_ipv6(), *len);
                if let Some(n) = self.net_lens.get_mut(&lk) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.net_lens.remove(&lk);
                    }
                }
            }
            IndexKey::Nothing => {}
        }
    }
}

fn record(truth: &mut Truth, event_id: &str, indicator_id: &str, class: Class) {
    let pair = (event_id.to_string(), indicator_id.to_string());
    match class {
        Class::Live => {
            truth.expected_matches.insert(pair);
        }
        Class::Retroactive => {
            truth.retroactive.insert(pair.clone());
            truth.expected_matches.insert(pair);
        }
        Class::Expired => {
            truth.expired.insert(pair);
        }
    }
}

fn index_key(ind: &Indicator) -> IndexKey {
    let v = &ind.value;
    match ind.kind {
        IndicatorKind::Ipv4 | IndicatorKind::Ipv6 => {
            v.parse().map_or(IndexKey::Nothing, IndexKey::Ip)
        }
        IndicatorKind::Cidr => v
            .split_once('/')
            .and_then(|(a, l)| Some((a.parse::<IpAddr>().ok()?, l.parse::<u8>().ok()?)))
            .and_then(|(a, l)| Some(IndexKey::Net(schemas::indicator::mask(a, l)?, l)))
            .unwrap_or(IndexKey::Nothing),
        IndicatorKind::Domain => IndexKey::Value(ValueKind::Domain, v.clone()),
        IndicatorKind::Url => IndexKey::Value(ValueKind::Url, v.clone()),
        IndicatorKind::Md5 | IndicatorKind::Sha1 | IndicatorKind::Sha256 => {
            IndexKey::Value(ValueKind::Hash, v.clone())
        }
        IndicatorKind::Email => IndexKey::Value(ValueKind::Email, v.clone()),
        IndicatorKind::Wallet => IndexKey::Value(ValueKind::Wallet, v.clone()),
    }
}

/// The highest address of `net/len`.
fn last_address(net: IpAddr, len: u8) -> Option<IpAddr> {
    match net {
        IpAddr::V4(a) if len <= 32 => {
            let host = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
            Some(IpAddr::V4((u32::from(a) | host).into()))
        }
        IpAddr::V6(a) if len <= 128 => {
            let host = u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
            Some(IpAddr::V6((u128::from(a) | host).into()))
        }
        _ => None,
    }
}

/// The host of a URL, if it is a domain name (`scheme://[userinfo@]host[:port]/…`).
pub(crate) fn url_domain(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.starts_with('[') {
        return None;
    }
    let host = host_port.split(':').next()?;
    if host.is_empty() || host.parse::<IpAddr>().is_ok() {
        None
    } else {
        Some(host)
    }
}

/// A domain and every parent of it with at least two labels.
fn with_parents(domain: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(domain);
    std::iter::from_fn(move || {
        let cur = next?;
        next = cur
            .split_once('.')
            .map(|(_, p)| p)
            .filter(|p| p.contains('.'));
        Some(cur)
    })
}

/// The equality keys and the addresses of an event, each once.
fn observables(ev: &SensorEvent) -> (BTreeSet<(ValueKind, String)>, BTreeSet<IpAddr>) {
    let mut values = BTreeSet::new();
    let ips: BTreeSet<IpAddr> = [ev.src_ip, ev.dst_ip, ev.victim_ip]
        .into_iter()
        .flatten()
        .collect();
    let hosts = ev
        .domain
        .as_deref()
        .into_iter()
        .chain(ev.url.as_deref().and_then(url_domain));
    for host in hosts {
        for d in with_parents(host) {
            values.insert((ValueKind::Domain, d.to_string()));
        }
    }
    if let Some(u) = &ev.url {
        values.insert((ValueKind::Url, u.clone()));
    }
    let h = &ev.file_hashes;
    for hash in [&h.md5, &h.sha1, &h.sha256].into_iter().flatten() {
        values.insert((ValueKind::Hash, hash.clone()));
    }
    if let Some(e) = &ev.email {
        values.insert((ValueKind::Email, e.clone()));
    }
    if let Some(w) = &ev.wallet {
        values.insert((ValueKind::Wallet, w.clone()));
    }
    (values, ips)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_stop_at_two_labels() {
        let p: Vec<_> = with_parents("a.b.evil.top").collect();
        assert_eq!(p, ["a.b.evil.top", "b.evil.top", "evil.top"]);
        assert_eq!(with_parents("evil.top").collect::<Vec<_>>(), ["evil.top"]);
    }

    #[test]
    fn url_domain_skips_ports_users_and_addresses() {
        assert_eq!(url_domain("http://x.evil.top/gate.php"), Some("x.evil.top"));
        assert_eq!(
            url_domain("https://u@x.evil.top:8443/?q"),
            Some("x.evil.top")
        );
        assert_eq!(url_domain("http://45.1.2.3/x"), None);
        assert_eq!(url_domain("http://[2a0b::1]/x"), None);
    }

    #[test]
    fn last_address_of_a_network() {
        let net: IpAddr = "45.1.2.0".parse().expect("address");
        assert_eq!(last_address(net, 24), "45.1.2.255".parse().ok());
        assert_eq!(last_address(net, 32), Some(net));
        assert_eq!(last_address(net, 33), None);
    }
}
