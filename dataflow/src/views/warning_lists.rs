//! Warning lists: known-benign values (public resolvers, big CDN domains, private and
//! special-purpose networks) whose matches are suppressed as near-certain false positives.
//!
//! The lists are data: [`parse`] reads them from TOML (the default set ships as
//! `deploy/config/warning-lists.toml`) into [`WarningEntry`] records, and [`suppress`]
//! takes them as a collection, so replacing the entries at runtime (retract the old,
//! insert the new) re-derives which matches are kept and which are suppressed.
//!
//! A match is suppressed by an entry when its indicator's value is covered by it:
//!
//! - an exact entry (an address, domain, URL, hash, e-mail address or wallet) covers
//!   the indicator with that same kind of value and value;
//! - a domain entry written `*.example.com` covers `example.com` and every subdomain;
//! - a network entry (`10.0.0.0/8`) covers the address indicators inside it and the
//!   network indicators inside it (prefix at least as long).
//!
//! The indicator value stands for the event observable: an address or exact-value
//! indicator matches only that value, a domain indicator only its own subdomains, a
//! network indicator only addresses inside it, so covering the indicator covers every
//! observable it can match. Caveat: a network indicator *wider* than a listed network
//! (`8.0.0.0/8` against the resolver `8.8.8.8`) is not suppressed, since a match does
//! not say which address of the network the event had.
//!
//! Network entries use the same trick as matching: each address or network indicator is
//! masked by every prefix length present among the entries and looked up by key, so
//! the work is the number of distinct prefix lengths, not the number of networks.
//! The suppressed matches carry the names of every list that covers them, sorted.
//!
//! File format (strict: unknown fields are errors):
//!
//! ```toml
//! [[list]]
//! name = "public-dns-resolvers"          # unique, not empty
//! description = "Public DNS resolvers"   # optional
//! values = ["8.8.8.8", "2001:4860:4860::8888", "*.dns.google", "192.168.0.0/16"]
//! ```
//!
//! Each value's kind is recognised as in plain feed lists
//! ([`schemas::IndicatorKind::detect`]) and the value normalized.

use std::net::IpAddr;

use differential_dataflow::VecCollection;
use schemas::{Alert, IndicatorKind};
use serde::{Deserialize, Serialize};

use crate::Time;
use crate::matching::Match;
use crate::observables::{cidr_key, indicator_key, key_hash};

/// One value of one warning list.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WarningEntry {
    /// The list it belongs to.
    pub list: String,
    /// What the value is.
    pub kind: IndicatorKind,
    /// The value, normalized for its kind (a domain without its `*.`).
    pub value: String,
    /// For a domain: the entry also covers every subdomain (written `*.domain`).
    #[serde(default)]
    pub subdomains: bool,
}

/// Why warning lists could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WarningListError {
    /// Not TOML, or not the warning-list format.
    #[error("the warning lists are not valid warning-list TOML: {0}")]
    Toml(String),
    /// A list without a name.
    #[error("warning list number {index} (counting from 1) has an empty name; name every [[list]]")]
    EmptyName {
        /// Position of the list in the file, from 1.
        index: usize,
    },
    /// Two lists with the same name.
    #[error("warning list {name:?} is defined twice; merge the two [[list]] tables or rename one")]
    DuplicateList {
        /// The name.
        name: String,
    },
    /// A value that is not an address, network, domain, URL, hash, e-mail address or wallet.
    #[error("warning list {list:?}: value {value:?} {reason}; correct or remove it")]
    InvalidValue {
        /// The list.
        list: String,
        /// The value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The warning-list file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListsFile {
    #[serde(default)]
    list: Vec<ListSpec>,
}

/// One `[[list]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListSpec {
    name: String,
    #[serde(default)]
    #[allow(dead_code)] // Read for the operators' benefit only: it documents the list.
    description: String,
    values: Vec<String>,
}

/// Parses warning lists (see the module documentation for the format) into their
/// entries, sorted and without repeats.
pub fn parse(toml_text: &str) -> Result<Vec<WarningEntry>, WarningListError> {
    let file: ListsFile =
        toml::from_str(toml_text).map_err(|e| WarningListError::Toml(e.to_string()))?;
    let mut names = std::collections::BTreeSet::new();
    let mut entries = Vec::new();
    for (n, spec) in file.list.into_iter().enumerate() {
        let name = spec.name.trim().to_string();
        if name.is_empty() {
            return Err(WarningListError::EmptyName { index: n + 1 });
        }
        if !names.insert(name.clone()) {
            return Err(WarningListError::DuplicateList { name });
        }
        for raw in &spec.values {
            let invalid = |reason: String| WarningListError::InvalidValue {
                list: name.clone(),
                value: raw.clone(),
                reason,
            };
            let trimmed = raw.trim();
            let (kind, value, subdomains) = if let Some(domain) = trimmed.strip_prefix("*.") {
                let value = IndicatorKind::Domain.normalize(domain).map_err(invalid)?;
                (IndicatorKind::Domain, value, true)
            } else {
                let kind = IndicatorKind::detect(trimmed).ok_or_else(|| {
                    invalid(
                        "is not an address, network, domain, URL, hash, e-mail address or wallet"
                            .to_string(),
                    )
                })?;
                (kind, kind.normalize(trimmed).map_err(invalid)?, false)
            };
            entries.push(WarningEntry {
                list: name.clone(),
                kind,
                value,
                subdomains,
            });
        }
    }
    entries.sort();
    entries.dedup();
    Ok(entries)
}

/// The matches split by the warning lists.
#[derive(Clone)]
pub struct Suppression<'s> {
    /// Matches no list covers.
    pub kept: VecCollection<'s, Time, Match>,
    /// Matches some list covers, with the names of all the lists covering them, sorted.
    pub suppressed: VecCollection<'s, Time, (Match, Vec<String>)>,
}

/// Splits `matches` into those the warning `entries` cover and the others (see the
/// module documentation).
pub fn suppress<'s>(
    matches: VecCollection<'s, Time, Match>,
    entries: VecCollection<'s, Time, WarningEntry>,
) -> Suppression<'s> {
    // Each indicator value is looked up once, however many matches it has.
    let values = matches
        .clone()
        .map(|m| (m.indicator.kind, m.indicator.value))
        .distinct();
    let lists = covering(values, entries);
    let keyed = matches.map(|m| (value_id(m.indicator.kind, &m.indicator.value), m));
    let suppressed = keyed
        .clone()
        .join_map(lists.clone(), |_id, m, names| (m.clone(), names.clone()));
    let kept = keyed.antijoin(lists.map(|(id, _)| id)).map(|(_, m)| m);
    Suppression { kept, suppressed }
}

/// The alerts split by the warning lists, as [`suppress`] splits matches: an alert is
/// suppressed when its indicator's value is covered.
pub fn suppress_alerts<'s>(
    alerts: VecCollection<'s, Time, Alert>,
    entries: VecCollection<'s, Time, WarningEntry>,
) -> (
    VecCollection<'s, Time, Alert>,
    VecCollection<'s, Time, (Alert, Vec<String>)>,
) {
    let values = alerts
        .clone()
        .map(|a| (a.indicator.kind, a.indicator.value))
        .distinct();
    let lists = covering(values, entries);
    let keyed = alerts.map(|a| (value_id(a.indicator.kind, &a.indicator.value), a));
    let suppressed = keyed
        .clone()
        .join_map(lists.clone(), |_id, a, names| (a.clone(), names.clone()));
    let kept = keyed.antijoin(lists.map(|(id, _)| id)).map(|(_, a)| a);
    (kept, suppressed)
}

/// For each indicator value (kind, value) some entry covers: its [`value_id`] and the
/// names of every list covering it, sorted.
fn covering<'s>(
    values: VecCollection<'s, Time, (IndicatorKind, String)>,
    entries: VecCollection<'s, Time, WarningEntry>,
) -> VecCollection<'s, Time, (u64, Vec<String>)> {
    let exact = values.clone().flat_map(|(kind, value)| {
        let id = value_id(kind, &value);
        exact_candidates(kind, &value)
            .into_iter()
            .map(move |key| (key_hash(&key), id))
    });
    let prefixes = entries
        .clone()
        .flat_map(|e| entry_network(&e).map(|(net, len)| (net.is_ipv6(), len)))
        .distinct();
    let networked = values
        .flat_map(|(kind, value)| {
            let id = value_id(kind, &value);
            indicator_network(kind, &value).map(|(ip, len)| (ip.is_ipv6(), (ip, len, id)))
        })
        .join_map(prefixes, |_family, (ip, len, id), listed| {
            (*ip, *len, *id, *listed)
        })
        .flat_map(|(ip, len, id, listed)| {
            // A listed network covers networks at least as long as itself.
            (listed <= len)
                .then(|| cidr_key(ip, listed))
                .flatten()
                .map(|key| (key_hash(&key), id))
        });
    let listed = entries.map(|e| (key_hash(&entry_key(&e)), e.list));
    exact
        .concat(networked)
        .join_map(listed, |_key, id, list| (*id, list.clone()))
        .reduce_named(
            "WarningListsCovering",
            |_id, group: &[(&String, isize)], out: &mut Vec<(Vec<String>, isize)>| {
                let names: Vec<String> = group
                    .iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(l, _)| (*l).clone())
                    .collect();
                if !names.is_empty() {
                    out.push((names, 1));
                }
            },
        )
}

/// The compact id of an indicator value.
fn value_id(kind: IndicatorKind, value: &str) -> u64 {
    key_hash(&indicator_key(kind, value))
}

/// The lookup key of an entry; the indicator side produces the same keys in
/// [`exact_candidates`] and as masked networks.
fn entry_key(e: &WarningEntry) -> String {
    if e.kind == IndicatorKind::Domain && e.subdomains {
        // `*` never occurs in a normalized domain: no clash with an exact domain key.
        format!("domain:*.{}", e.value)
    } else {
        indicator_key(e.kind, &e.value)
    }
}

/// The keys of the entries that may cover an indicator value, network entries aside.
fn exact_candidates(kind: IndicatorKind, value: &str) -> Vec<String> {
    let mut keys = vec![indicator_key(kind, value)];
    match kind {
        IndicatorKind::Domain => {
            // The domain and each parent, as `*.` entries.
            let mut rest = value;
            loop {
                keys.push(format!("domain:*.{rest}"));
                match rest.split_once('.') {
                    Some((_, parent)) if !parent.is_empty() => rest = parent,
                    _ => break,
                }
            }
        }
        IndicatorKind::Cidr => {
            // A single-address network is that address.
            if let Some((ip, len)) = parse_network(value)
                && u32::from(len) == width(ip)
            {
                keys.push(format!("ip:{ip}"));
            }
        }
        _ => {}
    }
    keys
}

/// An address or network indicator as (address, prefix length); an address is a full-length network.
fn indicator_network(kind: IndicatorKind, value: &str) -> Option<(IpAddr, u8)> {
    match kind {
        IndicatorKind::Ipv4 | IndicatorKind::Ipv6 => {
            let ip: IpAddr = value.parse().ok()?;
            Some((ip, u8::try_from(width(ip)).ok()?))
        }
        IndicatorKind::Cidr => parse_network(value),
        _ => None,
    }
}

/// The network of a network entry.
fn entry_network(e: &WarningEntry) -> Option<(IpAddr, u8)> {
    (e.kind == IndicatorKind::Cidr)
        .then(|| parse_network(&e.value))
        .flatten()
}

/// `net/len` as its parts.
fn parse_network(value: &str) -> Option<(IpAddr, u8)> {
    let (net, len) = value.split_once('/')?;
    Some((net.parse().ok()?, len.parse().ok()?))
}

/// Bits in an address of `ip`'s family.
fn width(ip: IpAddr) -> u32 {
    if ip.is_ipv6() { 128 } else { 32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values_of_every_kind_and_normalizes_them() {
        let entries = parse(
            r#"
            [[list]]
            name = "mixed"
            description = "one of each"
            values = ["8.8.8.8", "2001:4860:4860::8888", "10.1.2.3/8", "*.Dns.Google.", "example.com", "8.8.8.8"]
            "#,
        )
        .unwrap();
        let got: Vec<(IndicatorKind, &str, bool)> = entries
            .iter()
            .map(|e| (e.kind, e.value.as_str(), e.subdomains))
            .collect();
        assert_eq!(
            got,
            vec![
                (IndicatorKind::Ipv4, "8.8.8.8", false),
                (IndicatorKind::Ipv6, "2001:4860:4860::8888", false),
                (IndicatorKind::Cidr, "10.0.0.0/8", false),
                (IndicatorKind::Domain, "dns.google", true),
                (IndicatorKind::Domain, "example.com", false),
            ]
        );
        assert!(entries.iter().all(|e| e.list == "mixed"));
    }

    #[test]
    fn bad_files_are_rejected_with_the_reason() {
        let err = |text: &str| parse(text).unwrap_err();
        assert!(matches!(
            err("[[list]]\nname = \"a\"\nvalues = [\"not a value\"]"),
            WarningListError::InvalidValue { ref value, .. } if value == "not a value"
        ));
        assert!(matches!(
            err("[[list]]\nname = \"a\"\nvalues = [\"*.1.2.3.4\"]"),
            WarningListError::InvalidValue { .. }
        ));
        assert!(matches!(
            err("[[list]]\nname = \"a\"\nvalues = [\"10.0.0.0/33\"]"),
            WarningListError::InvalidValue { .. }
        ));
        assert_eq!(
            err("[[list]]\nname = \" \"\nvalues = []"),
            WarningListError::EmptyName { index: 1 }
        );
        assert_eq!(
            err("[[list]]\nname = \"a\"\nvalues = []\n[[list]]\nname = \"a\"\nvalues = []"),
            WarningListError::DuplicateList { name: "a".into() }
        );
        assert!(matches!(
            err("[[list]]\nname = \"a\"\nvalue = []"),
            WarningListError::Toml(_)
        ));
        assert!(matches!(err("[[list]"), WarningListError::Toml(_)));
    }
}
