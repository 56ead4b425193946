//! Indicators of compromise as partners and OSINT feeds share them.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::marking::{Marking, Tlp};
use crate::validate::{self, ValidationError};

/// What an indicator's value is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum IndicatorKind {
    /// An IPv4 address.
    Ipv4,
    /// An IPv6 address.
    Ipv6,
    /// An IPv4 or IPv6 network in CIDR notation.
    Cidr,
    /// A domain name; matches the domain and every subdomain of it.
    Domain,
    /// A URL.
    Url,
    /// An MD5 file hash.
    Md5,
    /// A SHA-1 file hash.
    Sha1,
    /// A SHA-256 file hash.
    Sha256,
    /// An e-mail address.
    Email,
    /// A crypto-currency wallet address (Bitcoin base58 or bech32, Ethereum).
    Wallet,
}

/// Whether an indicator comes from a private partner or an open-source feed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A private-sector partner sharing under its own markings.
    Partner,
    /// An open-source feed.
    Osint,
}

/// One version of an indicator; a later version with the same `id` replaces it.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Indicator {
    /// Schema version of this record; this release reads 1.
    pub schema_version: u32,
    /// Stable id of the indicator (STIX id or the owner's own).
    pub id: String,
    /// What the value is.
    pub kind: IndicatorKind,
    /// The value, normalized for its kind (see [`IndicatorKind::normalize`]).
    pub value: String,
    /// The organisation that owns the information and decides who may see it.
    pub owner: String,
    /// Partner or OSINT.
    pub source_kind: SourceKind,
    /// Which partner feed or OSINT feed it came from.
    pub source_id: String,
    /// TLP 2.0 level set by the owner.
    pub tlp: Tlp,
    /// Recipients the owner shares it with (used for AMBER and RED).
    #[serde(default)]
    pub sharing: Vec<String>,
    /// The owner's confidence, 0 to 100.
    pub confidence: u8,
    /// When the owner created the indicator.
    pub created: Timestamp,
    /// When this version was made; the latest version wins.
    pub modified: Timestamp,
    /// Events before this instant do not match.
    pub valid_from: Timestamp,
    /// Events at or after this instant do not match; none means no expiry.
    #[serde(default)]
    pub valid_until: Option<Timestamp>,
    /// The owner withdrew the intelligence as wrong; its alerts are withdrawn.
    #[serde(default)]
    pub revoked: bool,
    /// Free labels (malware family, campaign name, indicator types).
    #[serde(default)]
    pub labels: Vec<String>,
}

impl Indicator {
    /// Checks every field; the value must already be in normalized form.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate::schema_version(self.schema_version)?;
        validate::id("id", &self.id)?;
        validate::id("owner", &self.owner)?;
        validate::id("source_id", &self.source_id)?;
        match self.kind.normalized(&self.value) {
            Ok(normal) if *normal == *self.value => {}
            Ok(normal) => {
                return Err(ValidationError::new(
                    "value",
                    format!("is not normalized; expected {normal:?}"),
                ));
            }
            Err(reason) => return Err(ValidationError::new("value", reason)),
        }
        for (i, r) in self.sharing.iter().enumerate() {
            validate::id(&format!("sharing[{i}]"), r)?;
        }
        if self.confidence > 100 {
            return Err(ValidationError::new(
                "confidence",
                format!("{} is above 100", self.confidence),
            ));
        }
        if let Some(until) = self.valid_until
            && until <= self.valid_from
        {
            return Err(ValidationError::new(
                "valid_until",
                "must be after valid_from",
            ));
        }
        if self.modified < self.created {
            return Err(ValidationError::new(
                "modified",
                "must not be before created",
            ));
        }
        for (i, l) in self.labels.iter().enumerate() {
            validate::text(&format!("labels[{i}]"), l)?;
            if l.len() > validate::MAX_ID_BYTES {
                return Err(ValidationError::new(format!("labels[{i}]"), "is too long"));
            }
        }
        Ok(())
    }

    /// The marking of this indicator.
    pub fn marking(&self) -> Marking {
        let mut sharing = self.sharing.clone();
        sharing.sort();
        sharing.dedup();
        Marking {
            tlp: self.tlp,
            owner: self.owner.clone(),
            sharing,
        }
    }
}

impl IndicatorKind {
    /// The name used in JSON and in match keys.
    pub fn as_str(self) -> &'static str {
        match self {
            IndicatorKind::Ipv4 => "ipv4",
            IndicatorKind::Ipv6 => "ipv6",
            IndicatorKind::Cidr => "cidr",
            IndicatorKind::Domain => "domain",
            IndicatorKind::Url => "url",
            IndicatorKind::Md5 => "md5",
            IndicatorKind::Sha1 => "sha1",
            IndicatorKind::Sha256 => "sha256",
            IndicatorKind::Email => "email",
            IndicatorKind::Wallet => "wallet",
        }
    }

    /// Brings a raw value into the canonical form matching uses, or says why it is not a valid value of this kind.
    pub fn normalize(self, raw: &str) -> Result<String, String> {
        self.normalized(raw).map(Cow::into_owned)
    }

    /// [`IndicatorKind::normalize`], borrowing from `raw` where the canonical form is a
    /// part of it (a value already in canonical form, as records must carry it, costs no
    /// allocation to check).
    pub fn normalized(self, raw: &str) -> Result<Cow<'_, str>, String> {
        let raw = raw.trim();
        if raw.len() > validate::MAX_VALUE_BYTES {
            return Err(format!(
                "is {} bytes, at most {} allowed",
                raw.len(),
                validate::MAX_VALUE_BYTES
            ));
        }
        match self {
            IndicatorKind::Ipv4 => raw
                .parse::<Ipv4Addr>()
                .map(|ip| Cow::Owned(ip.to_string()))
                .map_err(|_| format!("{raw:?} is not an IPv4 address")),
            IndicatorKind::Ipv6 => raw
                .parse::<Ipv6Addr>()
                .map(|ip| Cow::Owned(ip.to_string()))
                .map_err(|_| format!("{raw:?} is not an IPv6 address")),
            IndicatorKind::Cidr => normalize_cidr(raw).map(Cow::Owned),
            IndicatorKind::Domain => normalize_domain(raw),
            IndicatorKind::Url => normalize_url(raw).map(Cow::Owned),
            IndicatorKind::Md5 => normalize_hex(raw, 32, "MD5"),
            IndicatorKind::Sha1 => normalize_hex(raw, 40, "SHA-1"),
            IndicatorKind::Sha256 => normalize_hex(raw, 64, "SHA-256"),
            IndicatorKind::Email => normalize_email(raw),
            IndicatorKind::Wallet => normalize_wallet(raw),
        }
    }

    /// Guesses the kind of a bare value, as found in plain feed lists.
    pub fn detect(raw: &str) -> Option<IndicatorKind> {
        let raw = raw.trim();
        let kinds = [
            IndicatorKind::Ipv4,
            IndicatorKind::Ipv6,
            IndicatorKind::Cidr,
            IndicatorKind::Md5,
            IndicatorKind::Sha1,
            IndicatorKind::Sha256,
            IndicatorKind::Wallet,
            IndicatorKind::Email,
        ];
        if let Some(k) = kinds.into_iter().find(|k| k.normalize(raw).is_ok()) {
            return Some(k);
        }
        if raw.contains("://") {
            return IndicatorKind::Url
                .normalize(raw)
                .ok()
                .map(|_| IndicatorKind::Url);
        }
        IndicatorKind::Domain
            .normalize(raw)
            .ok()
            .map(|_| IndicatorKind::Domain)
    }
}

/// A CIDR network, with the host bits cleared: `10.1.2.3/8` becomes `10.0.0.0/8`.
fn normalize_cidr(raw: &str) -> Result<String, String> {
    let (addr, len) = raw
        .split_once('/')
        .ok_or_else(|| format!("{raw:?} has no /prefix-length"))?;
    let len: u8 = len
        .parse()
        .map_err(|_| format!("{raw:?} has an invalid prefix length"))?;
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("{raw:?} does not start with an IP address"))?;
    let net = mask(ip, len).ok_or_else(|| format!("prefix length /{len} is too long for {ip}"))?;
    Ok(format!("{net}/{len}"))
}

/// Clears the host bits of `ip` beyond `len`; none if `len` exceeds the address width.
pub fn mask(ip: IpAddr, len: u8) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(v4) if len <= 32 => {
            let bits = u32::from(v4);
            let m = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            Some(IpAddr::V4(Ipv4Addr::from(bits & m)))
        }
        IpAddr::V6(v6) if len <= 128 => {
            let bits = u128::from(v6);
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            Some(IpAddr::V6(Ipv6Addr::from(bits & m)))
        }
        _ => None,
    }
}

fn normalize_domain(raw: &str) -> Result<Cow<'_, str>, String> {
    let d = lower(raw.trim_end_matches('.'));
    if !d.is_ascii() {
        return Err(format!(
            "{raw:?} is not ASCII; write international names in punycode (xn--)"
        ));
    }
    if d.len() > 253 {
        return Err("is longer than 253 characters".to_string());
    }
    if !d.as_bytes().contains(&b'.') {
        return Err(format!(
            "{raw:?} is not a domain name with at least two labels"
        ));
    }
    // One pass over the bytes, label by label (a '.' sentinel closes the last one), with
    // the checks in the order they report: each label's length, then its characters.
    let (mut len, mut bad, mut digits, mut tld_digits) = (0usize, false, true, false);
    for &b in d.as_bytes().iter().chain(std::iter::once(&b'.')) {
        if b != b'.' {
            len += 1;
            bad |= !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            digits &= b.is_ascii_digit();
            continue;
        }
        if len == 0 || len > 63 {
            return Err(format!("{raw:?} has an empty or over-long label"));
        }
        if bad {
            return Err(format!(
                "{raw:?} has a label with characters other than letters, digits, - and _"
            ));
        }
        tld_digits = digits;
        (len, digits) = (0, true);
    }
    // An all-digit top-level label also catches every IPv4 address (an IPv6 address has
    // a ':', refused above).
    if tld_digits {
        return Err(format!("{raw:?} is an address, not a domain name"));
    }
    Ok(d)
}

/// `s` in ASCII lower case, borrowed when it already is.
fn lower(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

fn normalize_url(raw: &str) -> Result<String, String> {
    let u = url::Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https" | "ftp" | "ftps" | "ws" | "wss") {
        return Err(format!("scheme {:?} is not a network scheme", u.scheme()));
    }
    if u.host_str().is_none() {
        return Err(format!("{raw:?} has no host"));
    }
    let mut u = u;
    u.set_fragment(None);
    Ok(u.to_string())
}

fn normalize_hex<'a>(raw: &'a str, len: usize, name: &str) -> Result<Cow<'a, str>, String> {
    if raw.len() == len && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(lower(raw))
    } else {
        Err(format!("is not a {name} hash ({len} hexadecimal digits)"))
    }
}

fn normalize_email(raw: &str) -> Result<Cow<'_, str>, String> {
    let (local, domain) = raw
        .rsplit_once('@')
        .ok_or_else(|| format!("{raw:?} is not an e-mail address"))?;
    if local.is_empty()
        || local.len() > 64
        || !local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&b))
    {
        return Err(format!("{raw:?} has an invalid local part"));
    }
    let normal_domain = normalize_domain(domain)?;
    let normal_local = lower(local);
    if *normal_local == *local && *normal_domain == *domain {
        return Ok(Cow::Borrowed(raw));
    }
    Ok(Cow::Owned(format!("{normal_local}@{normal_domain}")))
}

fn normalize_wallet(raw: &str) -> Result<Cow<'_, str>, String> {
    const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let lower = lower(raw);
    if let Some(hex) = lower.strip_prefix("0x")
        && hex.len() == 40
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Ok(lower);
    }
    if let Some(rest) = lower.strip_prefix("bc1")
        && (11..=71).contains(&rest.len())
        && rest
            .bytes()
            .all(|b| b"qpzry9x8gf2tvdw0s3jn54khce6mua7l".contains(&b))
        && (raw == lower || raw.bytes().all(|b| !b.is_ascii_lowercase()))
    {
        return Ok(lower);
    }
    if (26..=35).contains(&raw.len())
        && (raw.starts_with('1') || raw.starts_with('3'))
        && raw.bytes().all(|b| BASE58.contains(&b))
    {
        return Ok(Cow::Borrowed(raw));
    }
    Err(format!(
        "{raw:?} is not a Bitcoin (base58 or bc1) or Ethereum (0x) wallet address"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The rules for domains, e-mail addresses and wallets read plainly, allocating as
    /// they go (the implementation before the one that borrows): the oracle.
    mod plain {
        use std::net::IpAddr;

        pub fn domain(raw: &str) -> Result<String, String> {
            let d = raw.trim_end_matches('.').to_ascii_lowercase();
            if !d.is_ascii() {
                return Err(format!(
                    "{raw:?} is not ASCII; write international names in punycode (xn--)"
                ));
            }
            if d.len() > 253 {
                return Err("is longer than 253 characters".to_string());
            }
            let labels: Vec<&str> = d.split('.').collect();
            if labels.len() < 2 {
                return Err(format!(
                    "{raw:?} is not a domain name with at least two labels"
                ));
            }
            for l in &labels {
                if l.is_empty() || l.len() > 63 {
                    return Err(format!("{raw:?} has an empty or over-long label"));
                }
                if !l
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Err(format!(
                        "{raw:?} has a label with characters other than letters, digits, - and _"
                    ));
                }
            }
            if d.parse::<IpAddr>().is_ok()
                || labels
                    .last()
                    .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
            {
                return Err(format!("{raw:?} is an address, not a domain name"));
            }
            Ok(d)
        }

        pub fn email(raw: &str) -> Result<String, String> {
            let (local, domain) = raw
                .rsplit_once('@')
                .ok_or_else(|| format!("{raw:?} is not an e-mail address"))?;
            if local.is_empty()
                || local.len() > 64
                || !local
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&b))
            {
                return Err(format!("{raw:?} has an invalid local part"));
            }
            let domain = self::domain(domain)?;
            Ok(format!("{}@{domain}", local.to_ascii_lowercase()))
        }

        pub fn wallet(raw: &str) -> Result<String, String> {
            const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
            let lower = raw.to_ascii_lowercase();
            if let Some(hex) = lower.strip_prefix("0x")
                && hex.len() == 40
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Ok(lower);
            }
            if let Some(rest) = lower.strip_prefix("bc1")
                && (11..=71).contains(&rest.len())
                && rest
                    .bytes()
                    .all(|b| b"qpzry9x8gf2tvdw0s3jn54khce6mua7l".contains(&b))
                && (raw == lower || raw == raw.to_ascii_uppercase())
            {
                return Ok(lower);
            }
            if (26..=35).contains(&raw.len())
                && (raw.starts_with('1') || raw.starts_with('3'))
                && raw.bytes().all(|b| BASE58.contains(&b))
            {
                return Ok(raw.to_string());
            }
            Err(format!(
                "{raw:?} is not a Bitcoin (base58 or bc1) or Ethereum (0x) wallet address"
            ))
        }
    }

    /// Domain-like text: labels of 0 to 70 characters (a few of them not allowed),
    /// dots, sometimes upper case, an address or an e-mail address.
    fn domainish() -> impl Strategy<Value = String> {
        prop_oneof![
            "([a-zA-Z0-9_-]{0,3}[.]?){0,5}",
            "([a-z0-9$ :-]{0,70}[.]){1,4}[a-zA-Z0-9.]{0,4}",
            "[0-9]{1,3}[.][0-9]{1,3}[.][0-9]{1,3}[.][0-9]{1,3}[.]?",
            "[a-zA-Z0-9.!+-]{0,8}@([a-zA-Z0-9_-]{0,4}[.]?){0,4}",
            "[a-z0-9.é]{0,12}",
        ]
    }

    proptest! {
        #[test]
        fn domains_and_addresses_are_judged_as_the_plain_rules_say(raw in domainish()) {
            prop_assert_eq!(IndicatorKind::Domain.normalize(&raw), plain::domain(raw.trim()));
            prop_assert_eq!(IndicatorKind::Email.normalize(&raw), plain::email(raw.trim()));
        }

        #[test]
        fn wallets_are_judged_as_the_plain_rules_say(
            raw in "(0[xX][0-9a-fA-F]{40}|[bB][cC]1[qpzry9x8gf2tvdw0s3jn54khce6mua7lQPZRY]{11,20}|[13][1-9A-Za-z]{25,34})"
        ) {
            prop_assert_eq!(IndicatorKind::Wallet.normalize(&raw), plain::wallet(&raw));
        }

        #[test]
        fn a_value_in_canonical_form_is_borrowed(raw in domainish()) {
            if let Ok(normal) = IndicatorKind::Domain.normalize(&raw)
                && normal == raw
            {
                prop_assert!(matches!(IndicatorKind::Domain.normalized(&raw), Ok(Cow::Borrowed(_))));
            }
        }
    }

    #[test]
    fn normalizes_each_kind() {
        use IndicatorKind::*;
        assert_eq!(Cidr.normalize("10.1.2.3/8").unwrap(), "10.0.0.0/8");
        assert_eq!(Cidr.normalize("2001:db8::1/32").unwrap(), "2001:db8::/32");
        assert_eq!(Domain.normalize("Evil.Example.").unwrap(), "evil.example");
        assert_eq!(Ipv6.normalize("2001:0db8::0001").unwrap(), "2001:db8::1");
        assert_eq!(
            Url.normalize("HTTP://Evil.Example/a#frag").unwrap(),
            "http://evil.example/a"
        );
        assert_eq!(
            Email.normalize("Bob@Evil.Example").unwrap(),
            "bob@evil.example"
        );
        assert!(Domain.normalize("1.2.3.4").is_err());
        assert!(Domain.normalize("exa mple.com").is_err());
        assert!(Cidr.normalize("10.0.0.0/33").is_err());
        assert!(Md5.normalize("zz").is_err());
    }

    #[test]
    fn detects_kinds_of_bare_values() {
        use IndicatorKind::*;
        assert_eq!(IndicatorKind::detect("198.51.100.7"), Some(Ipv4));
        assert_eq!(IndicatorKind::detect("2001:db8::7"), Some(Ipv6));
        assert_eq!(IndicatorKind::detect("198.51.100.0/24"), Some(Cidr));
        assert_eq!(IndicatorKind::detect("evil.example"), Some(Domain));
        assert_eq!(IndicatorKind::detect("https://evil.example/x"), Some(Url));
        assert_eq!(IndicatorKind::detect(&"a".repeat(64)), Some(Sha256));
        assert_eq!(
            IndicatorKind::detect("0x52908400098527886E0F7030069857D2E4169EE7"),
            Some(Wallet)
        );
        assert_eq!(
            IndicatorKind::detect("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"),
            Some(Wallet)
        );
        assert_eq!(IndicatorKind::detect("x@evil.example"), Some(Email));
        assert_eq!(IndicatorKind::detect("not a value"), None);
    }
}
