//! Observables: the values of a sensor event that indicators can match.
//!
//! Keys are `kind:value` strings in the normalized form of
//! [`schemas::IndicatorKind::normalize`]: `ip:` (IPv4 and IPv6), `domain:`, `url:`,
//! `md5:`, `sha1:`, `sha256:`, `email:`, `wallet:`, and `cidr:net/len` for networks.
//! A domain yields itself and every parent domain of at least two labels
//! (`a.b.evil.example` yields `b.evil.example` and `evil.example`; a bare
//! top-level domain is never a valid indicator), so an indicator on a domain
//! matches its subdomains; a URL also yields its host as a domain.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use schemas::{IndicatorKind, SensorEvent};
use serde::{Deserialize, Serialize};

/// A fixed 64-bit hash of a match key: the dataflow arranges observations by it
/// instead of by the key's text. FNV-1a with a final avalanche; the same on every
/// run and platform. Two different keys sharing a hash would match wrongly; with
/// 10^8 observed keys and 10^6 indicators the expected number of such pairs is
/// about 5·10^-6.
pub fn key_hash(key: &str) -> u64 {
    // FNV-1a, then the splitmix64 finaliser, which spreads FNV's weak low bits.
    key_hash_parts("", key)
}

/// [`key_hash`] of `prefix` followed by `value`, without building the string:
/// `key_hash_parts("ip:", v) == key_hash(&format!("ip:{v}"))`.
pub fn key_hash_parts(prefix: &str, value: &str) -> u64 {
    hash_bytes(&[prefix.as_bytes(), value.as_bytes()])
}

/// [`key_hash`] of the concatenation of `parts`, without building it.
pub fn hash_bytes(parts: &[&[u8]]) -> u64 {
    finish(parts.iter().fold(FNV_OFFSET, |h, p| fnv(h, p)))
}

/// FNV-1a's initial state.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a's state after `h` and then `bytes`.
const fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        h = (h ^ bytes[i] as u64).wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    h
}

/// The splitmix64 finaliser of an FNV-1a state: the hash.
fn finish(mut h: u64) -> u64 {
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The FNV-1a state after `domain:`: an event's domain and each of its parents are
/// hashed on from there (most events carry a domain of two or three keys).
const DOMAIN_PREFIX: u64 = fnv(FNV_OFFSET, b"domain:");

/// The match key of an indicator value of `kind` (already normalized).
pub fn indicator_key(kind: IndicatorKind, value: &str) -> String {
    match kind {
        IndicatorKind::Ipv4 | IndicatorKind::Ipv6 => format!("ip:{value}"),
        other => format!("{}:{value}", other.as_str()),
    }
}

/// [`key_hash`] of [`indicator_key`]: the number an indicator value's observable goes by.
pub fn indicator_key_hash(kind: IndicatorKind, value: &str) -> u64 {
    key_hash(&indicator_key(kind, value))
}

/// The match key of the network `ip/len`, with host bits cleared; none if `len` is too long.
pub fn cidr_key(ip: IpAddr, len: u8) -> Option<String> {
    schemas::indicator::mask(ip, len).map(|net| format!("cidr:{net}/{len}"))
}

/// Every IP address of the event (source, destination, victim), without duplicates.
pub fn event_ips<S>(ev: &SensorEvent<S>) -> Ips {
    Ips::new([ev.src_ip, ev.dst_ip, ev.victim_ip])
}

/// The addresses of an event: at most three (source, destination, victim), sorted,
/// without duplicates, held inline (an event's observables cost no allocation of their own).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Ips([Option<IpAddr>; 3]);

impl Ips {
    /// The distinct addresses among `ips`.
    pub fn new(ips: [Option<IpAddr>; 3]) -> Self {
        let mut held = [None; 3];
        let mut n = 0;
        for ip in ips.into_iter().flatten() {
            if !held.contains(&Some(ip))
                && let Some(slot) = held.get_mut(n)
            {
                *slot = Some(ip);
                n += 1;
            }
        }
        // The addresses first, in order; the empty slots after them.
        held.sort_unstable_by(|a, b| match (a, b) {
            (Some(a), Some(b)) => a.cmp(b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        });
        Self(held)
    }

    /// The addresses, ascending.
    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.0.iter().flatten().copied()
    }

    /// No address.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }
}

/// How many exact keys [`Keys`] holds inline.
const INLINE_KEYS: usize = 4;

/// An event's exact keys ([`exact_keys`]), sorted, without duplicates: up to four held
/// inline (a domain and its parent, a URL and its host: most events), more on the heap.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(from = "Vec<u64>", into = "Vec<u64>")]
pub struct Keys {
    /// Keys in `inline` (when `heap` is empty).
    len: u8,
    inline: [u64; INLINE_KEYS],
    /// All the keys, once there are more than fit inline.
    heap: Vec<u64>,
}

impl Keys {
    /// The keys, ascending.
    pub fn as_slice(&self) -> &[u64] {
        if self.heap.is_empty() {
            self.inline.get(..usize::from(self.len)).unwrap_or_default()
        } else {
            &self.heap
        }
    }

    /// No key.
    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    fn push(&mut self, key: u64) {
        if self.heap.is_empty()
            && let Some(slot) = self.inline.get_mut(usize::from(self.len))
        {
            *slot = key;
            self.len += 1;
            return;
        }
        if self.heap.is_empty() {
            let held = self.inline.get(..usize::from(self.len)).unwrap_or_default();
            self.heap.extend_from_slice(held);
            self.len = 0;
            self.inline = [0; INLINE_KEYS];
        }
        self.heap.push(key);
    }

    /// Sorts the keys and drops duplicates.
    fn sort_dedup(&mut self) {
        if !self.heap.is_empty() {
            self.heap.sort_unstable();
            self.heap.dedup();
            return;
        }
        let n = usize::from(self.len);
        let Some(keys) = self.inline.get_mut(..n) else {
            return;
        };
        keys.sort_unstable();
        let mut kept = 0;
        for at in 0..n {
            let k = keys.get(at).copied();
            if kept == 0 || keys.get(kept - 1).copied() != k {
                if let (Some(slot), Some(k)) = (keys.get_mut(kept), k) {
                    *slot = k;
                }
                kept += 1;
            }
        }
        for slot in keys.iter_mut().skip(kept) {
            *slot = 0;
        }
        self.len = u8::try_from(kept).unwrap_or(0);
    }
}

impl FromIterator<u64> for Keys {
    fn from_iter<I: IntoIterator<Item = u64>>(iter: I) -> Self {
        let mut keys = Keys::default();
        for k in iter {
            keys.push(k);
        }
        keys.sort_dedup();
        keys
    }
}

impl From<Vec<u64>> for Keys {
    fn from(keys: Vec<u64>) -> Self {
        keys.into_iter().collect()
    }
}

impl From<Keys> for Vec<u64> {
    fn from(keys: Keys) -> Self {
        keys.as_slice().to_vec()
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl PartialEq for Keys {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Keys {}

impl PartialOrd for Keys {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Keys {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl Hash for Keys {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

/// Every match key of the event except network (CIDR) keys, sorted and without duplicates.
pub fn event_keys(ev: &SensorEvent) -> Vec<String> {
    let mut keys: Vec<String> = event_ips(ev).iter().map(|ip| format!("ip:{ip}")).collect();
    let mut domains: Vec<&str> = Vec::new();
    if let Some(d) = &ev.domain {
        domains.push(d);
    }
    let url_host = ev
        .url
        .as_deref()
        .and_then(url_host)
        .filter(|h| h.parse::<IpAddr>().is_err());
    if let Some(h) = &url_host {
        domains.push(h);
    }
    for d in domains {
        // The domain and each parent of two labels or more: "a.b.c" -> "a.b.c", "b.c".
        let mut rest = d;
        loop {
            keys.push(format!("domain:{rest}"));
            match rest.split_once('.') {
                Some((_, parent)) if parent.contains('.') => rest = parent,
                _ => break,
            }
        }
    }
    keys.extend(artifact_keys(ev));
    if let Some(e) = &ev.email {
        keys.push(format!("email:{e}"));
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Hashes ([`key_hash`]) of every match key of the event except addresses and networks:
/// domains and their parents, URL and its host, file hashes, e-mail address, wallet;
/// sorted, without duplicates. Built without allocating a key string (nor, for up to four
/// keys, a list).
pub fn exact_keys<S: AsRef<str>>(ev: &SensorEvent<S>) -> Keys {
    let mut keys = Keys::default();
    let url_host = ev
        .url
        .as_ref()
        .and_then(|u| url_host(u.as_ref()))
        .filter(|h| h.parse::<IpAddr>().is_err());
    let domain = ev.domain.as_ref().map(AsRef::as_ref);
    for d in domain.into_iter().chain(url_host.as_deref()) {
        // The domain and each parent of two labels or more: "a.b.c" -> "a.b.c", "b.c".
        let mut rest = d;
        loop {
            keys.push(finish(fnv(DOMAIN_PREFIX, rest.as_bytes())));
            match rest.split_once('.') {
                Some((_, parent)) if parent.contains('.') => rest = parent,
                _ => break,
            }
        }
    }
    let h = &ev.file_hashes;
    let artifacts = [
        ("url:", &ev.url),
        ("md5:", &h.md5),
        ("sha1:", &h.sha1),
        ("sha256:", &h.sha256),
        ("email:", &ev.email),
        ("wallet:", &ev.wallet),
    ];
    for (prefix, value) in artifacts {
        if let Some(v) = value {
            keys.push(key_hash_parts(prefix, v.as_ref()));
        }
    }
    keys.sort_dedup();
    keys
}

/// A fixed 64-bit hash of any string (an indicator id, a sensor id): [`key_hash`].
pub fn string_hash(s: &str) -> u64 {
    key_hash(s)
}

/// The match keys of the event's artifacts: its URL, file hashes and wallet.
pub fn artifact_keys(ev: &SensorEvent) -> impl Iterator<Item = String> + '_ {
    let h = &ev.file_hashes;
    let url = ev.url.iter().map(|u| format!("url:{u}"));
    let hashes = [("md5", &h.md5), ("sha1", &h.sha1), ("sha256", &h.sha256)]
        .into_iter()
        .filter_map(|(kind, v)| v.as_ref().map(|v| format!("{kind}:{v}")));
    let wallet = ev.wallet.iter().map(|w| format!("wallet:{w}"));
    url.chain(hashes).chain(wallet)
}

/// The host of a normalized URL (lower case, without port or credentials).
pub fn url_host(u: &str) -> Option<String> {
    let after_scheme = u.split_once("://")?.1;
    let authority = after_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split_once(']')?.0
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::{EventKind, FileHashes};

    #[test]
    fn hashing_in_parts_equals_hashing_the_whole_key() {
        for (prefix, value) in [("ip:", "10.0.0.1"), ("domain:", "evil.example"), ("", "")] {
            assert_eq!(
                key_hash_parts(prefix, value),
                key_hash(&format!("{prefix}{value}"))
            );
        }
        assert_ne!(key_hash("ip:10.0.0.1"), key_hash("ip:10.0.0.2"));
    }

    fn event() -> SensorEvent {
        SensorEvent {
            schema_version: 1,
            event_id: "e".into(),
            sensor_id: "s".into(),
            country: "FR".into(),
            observed_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            kind: EventKind::Http,
            src_ip: Some("10.0.0.1".parse().unwrap()),
            src_port: None,
            dst_ip: Some("198.51.100.7".parse().unwrap()),
            dst_port: Some(80),
            proto: None,
            domain: Some("a.b.evil.example".into()),
            url: Some("http://user@cdn.evil.example:8080/x?q=1".into()),
            file_hashes: FileHashes {
                md5: Some("0".repeat(32)),
                ..FileHashes::default()
            },
            email: None,
            wallet: None,
            victim_ip: Some("10.0.0.1".parse().unwrap()),
            signature: None,
            purchase: None,
        }
    }

    #[test]
    fn domains_yield_every_parent_and_url_hosts_count() {
        let keys = event_keys(&event());
        for k in [
            "domain:a.b.evil.example",
            "domain:b.evil.example",
            "domain:evil.example",
            "domain:cdn.evil.example",
            "ip:10.0.0.1",
            "ip:198.51.100.7",
            "url:http://user@cdn.evil.example:8080/x?q=1",
        ] {
            assert!(keys.contains(&k.to_string()), "{k} missing from {keys:?}");
        }
        assert!(
            !keys.contains(&"domain:example".to_string()),
            "a bare top-level domain is never an indicator"
        );
        let ips = keys.iter().filter(|k| k.starts_with("ip:")).count();
        assert_eq!(ips, 2, "victim and source are the same address: one key");
    }

    #[test]
    fn exact_keys_are_the_hashes_of_the_non_address_keys() {
        let ev = event();
        let mut expected: Vec<u64> = event_keys(&ev)
            .iter()
            .filter(|k| !k.starts_with("ip:"))
            .map(|k| key_hash(k))
            .collect();
        expected.sort_unstable();
        assert_eq!(exact_keys(&ev).as_slice(), expected.as_slice());
        assert!(expected.len() > INLINE_KEYS, "the heap case");
        let mut two = ev;
        two.url = None;
        two.file_hashes = FileHashes::default();
        two.domain = Some("b.evil.example".into());
        assert_eq!(exact_keys(&two).as_slice(), expected_keys(&two).as_slice());
        assert_eq!(exact_keys(&two).as_slice().len(), 2, "held inline");
    }

    fn expected_keys(ev: &SensorEvent) -> Vec<u64> {
        let mut keys: Vec<u64> = event_keys(ev)
            .iter()
            .filter(|k| !k.starts_with("ip:"))
            .map(|k| key_hash(k))
            .collect();
        keys.sort_unstable();
        keys
    }

    #[test]
    fn keys_are_sorted_and_distinct_inline_or_not() {
        for n in 0..10u64 {
            let raw: Vec<u64> = (0..n).map(|i| (i * 7919) % 5).rev().collect();
            let keys: Keys = raw.iter().copied().collect();
            let mut want = raw.clone();
            want.sort_unstable();
            want.dedup();
            assert_eq!(keys.as_slice(), want.as_slice(), "{raw:?}");
            assert_eq!(Keys::from(want.clone()), keys);
            assert_eq!(Vec::from(keys), want);
        }
        let many: Keys = (0..9).rev().collect();
        assert_eq!(many.as_slice(), (0..9).collect::<Vec<u64>>().as_slice());
    }

    #[test]
    fn ips_are_sorted_and_distinct() {
        let a: IpAddr = "10.0.0.2".parse().unwrap();
        let b: IpAddr = "10.0.0.1".parse().unwrap();
        let c: IpAddr = "2001:db8::1".parse().unwrap();
        let ips = Ips::new([Some(c), Some(a), Some(a)]);
        assert_eq!(ips.iter().collect::<Vec<_>>(), vec![a, c]);
        assert_eq!(ips, Ips::new([None, Some(a), Some(c)]));
        let ips = Ips::new([Some(a), None, Some(b)]);
        assert_eq!(ips.iter().collect::<Vec<_>>(), vec![b, a]);
        assert!(Ips::new([None; 3]).is_empty());
    }

    #[test]
    fn cidr_keys_clear_host_bits() {
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(cidr_key(ip, 24).unwrap(), "cidr:198.51.100.0/24");
        assert_eq!(
            cidr_key(ip, 24),
            Some(indicator_key(IndicatorKind::Cidr, "198.51.100.0/24"))
        );
        assert!(cidr_key(ip, 33).is_none());
    }
}
