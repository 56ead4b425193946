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
//! allow_broad = false                    # optional: true accepts over-broad entries
//! ```
//!
//! Each value's kind is recognised as in plain feed lists
//! ([`schemas::IndicatorKind::detect`]) and the value normalized. A UTF-8 byte order
//! mark at the start of the file is ignored.
//!
//! Over-broad entries are refused, with their line and the reason, because one of them
//! silently suppresses a large share of all matches (`0.0.0.0/0` suppresses every IPv4
//! match):
//!
//! - an IPv4 network shorter than /8 ([`MIN_IPV4_PREFIX`]), unless it lies inside
//!   224.0.0.0/3 (multicast and reserved: never a remote host's unicast address);
//! - an IPv6 network shorter than /16 ([`MIN_IPV6_PREFIX`]), unless it lies inside
//!   fc00::/6 (unique local, link-local, site-local and multicast: never global unicast);
//! - `*.` on a common public second-level suffix under a country code (`*.co.uk`,
//!   `*.com.br`; a short built-in list, not the whole public suffix list). `*.com` is
//!   refused anyway: a single label is not a domain.
//!
//! A list that means it says so: `allow_broad = true` in its `[[list]]` table.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use differential_dataflow::VecCollection;
use rustc_hash::FxHashMap;
use schemas::IndicatorKind;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::Time;
use crate::matching::Match;
use crate::observables::{cidr_key, indicator_key, indicator_key_hash, key_hash};

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
    #[error("line {line}: warning list {list:?}: value {value:?} {reason}; correct or remove it")]
    InvalidValue {
        /// Line of the value in the file, from 1.
        line: usize,
        /// The list.
        list: String,
        /// The value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A value that would suppress a large share of all matches, in a list that does not
    /// say `allow_broad = true`.
    #[error(
        "line {line}: warning list {list:?}: value {value:?} is over-broad: {reason}; \
         list narrower values, or write `allow_broad = true` in this [[list]] if it is meant"
    )]
    Broad {
        /// Line of the value in the file, from 1.
        line: usize,
        /// The list.
        list: String,
        /// The value as written.
        value: String,
        /// Why it is too broad.
        reason: String,
    },
}

/// The shortest IPv4 prefix accepted without `allow_broad` (a /8 is 1/256 of the space).
pub const MIN_IPV4_PREFIX: u8 = 8;
/// The shortest IPv6 prefix accepted without `allow_broad` (a /16 is 1/8192 of the
/// global unicast space 2000::/3).
pub const MIN_IPV6_PREFIX: u8 = 16;

/// Public second-level labels under which anyone registers domains (`co.uk`,
/// `com.br`): `*.` on one of them under a two-letter country code is over-broad.
const PUBLIC_SECOND_LEVEL: [&str; 14] = [
    "ac", "co", "com", "edu", "gob", "gouv", "gov", "govt", "mil", "ne", "net", "nic", "or", "org",
];

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
    values: Vec<Spanned<String>>,
    /// Accept over-broad values (see the module documentation).
    #[serde(default)]
    allow_broad: bool,
}

/// Parses warning lists (see the module documentation for the format) into their
/// entries, sorted and without repeats.
pub fn parse(toml_text: &str) -> Result<Vec<WarningEntry>, WarningListError> {
    // A byte order mark is not part of the text (toml itself accepts it; stripping it
    // keeps the line numbers below computed on the text toml parsed).
    let toml_text = toml_text.strip_prefix('\u{feff}').unwrap_or(toml_text);
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
            let line = line_of(toml_text, raw.span().start);
            let raw = raw.get_ref();
            let invalid = |reason: String| WarningListError::InvalidValue {
                line,
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
            let entry = WarningEntry {
                list: name.clone(),
                kind,
                value,
                subdomains,
            };
            if !spec.allow_broad
                && let Some(reason) = too_broad(&entry)
            {
                return Err(WarningListError::Broad {
                    line,
                    list: name.clone(),
                    value: raw.clone(),
                    reason,
                });
            }
            entries.push(entry);
        }
    }
    entries.sort();
    entries.dedup();
    Ok(entries)
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Why an entry would suppress a large share of all matches, if it would (see the
/// module documentation).
fn too_broad(e: &WarningEntry) -> Option<String> {
    match e.kind {
        IndicatorKind::Cidr => {
            let (net, len) = parse_network(&e.value)?;
            let (min, special) = match net {
                IpAddr::V4(_) => (
                    MIN_IPV4_PREFIX,
                    (IpAddr::V4(Ipv4Addr::new(224, 0, 0, 0)), 3),
                ),
                IpAddr::V6(_) => (
                    MIN_IPV6_PREFIX,
                    (IpAddr::V6(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0)), 6),
                ),
            };
            let inside_special = len >= special.1
                && schemas::indicator::mask(net, special.1)
                    == schemas::indicator::mask(special.0, special.1);
            (len < min && !inside_special).then(|| {
                let family = if net.is_ipv6() { "IPv6" } else { "IPv4" };
                let share = match len {
                    0 => format!("every {family} address"),
                    _ => format!("1/{} of all {family} addresses", 1u64 << len),
                };
                format!("a /{len} network covers {share}; the shortest prefix accepted is /{min}")
            })
        }
        IndicatorKind::Domain if e.subdomains => {
            // A single label (`*.com`) is not a domain: refused as an invalid value.
            let labels: Vec<&str> = e.value.split('.').collect();
            match labels.as_slice() {
                [second, cc] if cc.len() == 2 && PUBLIC_SECOND_LEVEL.contains(second) => {
                    Some(format!(
                        "*.{} covers every domain registered under a public suffix",
                        e.value
                    ))
                }
                _ => None,
            }
        }
        _ => None,
    }
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
    let keyed = matches.map(|m| (indicator_key_hash(m.indicator.kind, &m.indicator.value), m));
    let suppressed = keyed
        .clone()
        .join_map(lists.clone(), |_id, m, names| (m.clone(), names.clone()));
    let kept = keyed.antijoin(lists.map(|(id, _)| id)).map(|(_, m)| m);
    Suppression { kept, suppressed }
}

/// The warning-list entries in force, indexed to say which lists cover an indicator
/// value: what [`suppress`] derives with joins, kept in place for the operator that
/// assembles alerts ([`crate::assembly`]), which looks up each alert's value as it changes.
#[derive(Debug, Default)]
pub struct Coverage {
    /// List names (with multiplicity) by the key hash of their entries ([`entry_key`]).
    listed: FxHashMap<u64, Vec<(String, isize)>>,
    /// The prefix lengths of network entries by family (IPv6 or not), with multiplicity.
    prefixes: BTreeMap<(bool, u8), isize>,
}

impl Coverage {
    /// Takes entry `e` in (`diff` > 0) or out.
    pub fn update(&mut self, e: &WarningEntry, diff: isize) {
        let key = key_hash(&entry_key(e));
        let names = self.listed.entry(key).or_default();
        crate::history::update_multiset(names, e.list.clone(), diff);
        if names.is_empty() {
            self.listed.remove(&key);
        }
        if let Some((net, len)) = entry_network(e) {
            let n = self.prefixes.entry((net.is_ipv6(), len)).or_default();
            *n += diff;
            if *n == 0 {
                self.prefixes.remove(&(net.is_ipv6(), len));
            }
        }
    }

    /// The names of the lists covering the indicator value (`kind`, `value`), sorted,
    /// each once; empty when none does.
    pub fn lists(&self, kind: IndicatorKind, value: &str) -> Vec<String> {
        if self.listed.is_empty() {
            return Vec::new();
        }
        let mut keys: Vec<u64> = exact_candidates(kind, value)
            .iter()
            .map(|k| key_hash(k))
            .collect();
        if let Some((ip, len)) = indicator_network(kind, value) {
            // A listed network covers networks at least as long as itself.
            keys.extend(
                self.prefixes
                    .keys()
                    .filter(|(v6, listed)| *v6 == ip.is_ipv6() && *listed <= len)
                    .filter_map(|(_, listed)| cidr_key(ip, *listed))
                    .map(|k| key_hash(&k)),
            );
        }
        let mut names: Vec<String> = keys
            .iter()
            .filter_map(|k| self.listed.get(k))
            .flatten()
            .filter(|(_, n)| *n > 0)
            .map(|(list, _)| list.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// For each indicator value (kind, value) some entry covers: its [`indicator_key_hash`] and the
/// names of every list covering it, sorted.
fn covering<'s>(
    values: VecCollection<'s, Time, (IndicatorKind, String)>,
    entries: VecCollection<'s, Time, WarningEntry>,
) -> VecCollection<'s, Time, (u64, Vec<String>)> {
    let exact = values.clone().flat_map(|(kind, value)| {
        let id = indicator_key_hash(kind, &value);
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
            let id = indicator_key_hash(kind, &value);
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

    /// The error of a one-list file holding `values`, or None when it parses.
    fn refusal(values: &str, allow_broad: bool) -> Option<WarningListError> {
        parse(&format!(
            "[[list]]\nname = \"l\"\nallow_broad = {allow_broad}\nvalues = [\n{values}\n]\n"
        ))
        .err()
    }

    #[test]
    fn over_broad_values_are_refused_with_their_line_and_reason() {
        for (value, reason) in [
            ("0.0.0.0/0", "covers every IPv4 address"),
            ("128.0.0.0/1", "covers 1/2 of all IPv4 addresses"),
            ("8.0.0.0/7", "covers 1/128 of all IPv4 addresses"),
            ("::/0", "covers every IPv6 address"),
            ("2000::/3", "covers 1/8 of all IPv6 addresses"),
            ("2a00::/15", "covers 1/32768 of all IPv6 addresses"),
            ("*.CO.UK", "registered under a public suffix"),
            ("*.com.br", "registered under a public suffix"),
        ] {
            let e = refusal(&format!("  \"8.8.8.8\",\n  \"{value}\",\n"), false)
                .unwrap_or_else(|| panic!("{value} is accepted"));
            let WarningListError::Broad {
                line,
                ref list,
                value: ref written,
                reason: _,
            } = e
            else {
                panic!("{value}: {e}");
            };
            assert_eq!((line, list.as_str(), written.as_str()), (6, "l", value));
            let msg = e.to_string();
            assert!(msg.contains(reason), "{value}: {msg}");
            assert!(
                msg.starts_with("line 6: ") && msg.contains("allow_broad = true"),
                "{msg}"
            );
            // The list may say it means it.
            assert_eq!(refusal(&format!("\"{value}\""), true), None, "{value}");
        }
    }

    #[test]
    fn narrow_and_special_purpose_networks_and_ordinary_wildcards_are_accepted() {
        for value in [
            "10.0.0.0/8",
            "0.0.0.0/8",
            "8.8.8.0/24",
            "224.0.0.0/4",
            "240.0.0.0/4",
            "224.0.0.0/3",
            "2001:db8::/32",
            "2a00::/16",
            "fc00::/7",
            "fe80::/10",
            "ff00::/8",
            "fc00::/6",
            "::1/128",
            "*.example.com",
            "*.akamai.net",
            "*.co.example",
            "*.google.de",
        ] {
            assert_eq!(refusal(&format!("\"{value}\""), false), None, "{value}");
        }
        // A wildcard on a top-level domain is not even a domain.
        assert!(matches!(
            refusal("\"*.com\"", true),
            Some(WarningListError::InvalidValue { .. })
        ));
        // The special-purpose exemption is for networks inside those blocks, not around them.
        assert!(refusal("\"192.0.0.0/2\"", false).is_some());
        assert!(refusal("\"f800::/5\"", false).is_some());
    }

    #[test]
    fn a_byte_order_mark_is_ignored_and_lines_still_count_from_the_top() {
        let text = "\u{feff}[[list]]\nname = \"a\"\nvalues = [\"8.8.8.8\"]\n";
        assert_eq!(parse(text).unwrap().len(), 1);
        let bad = "\u{feff}[[list]]\nname = \"a\"\nvalues = [\"0.0.0.0/0\"]\n";
        assert!(matches!(
            parse(bad).unwrap_err(),
            WarningListError::Broad { line: 3, .. }
        ));
    }

    #[test]
    fn an_invalid_value_is_named_with_its_line() {
        let e = parse("[[list]]\nname = \"a\"\nvalues = [\n\"8.8.8.8\",\n\"not a value\"]")
            .unwrap_err();
        assert!(
            matches!(e, WarningListError::InvalidValue { line: 5, .. }),
            "{e}"
        );
        assert!(e.to_string().starts_with("line 5: "), "{e}");
    }
}
