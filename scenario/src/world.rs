//! The fixed world every scenario plays in: countries and their sensors, partners and
//! their markings, OSINT feeds, and the value spaces benign and malicious traffic draw from.
//!
//! The world does not depend on the seed; the seed only drives traffic and campaigns.
//! Benign and malicious values are disjoint by construction, so a benign event can never
//! match a planted indicator, even through parent domains or CIDR ranges:
//!
//! - benign domains are subdomains of [`BENIGN_DOMAINS`], whose top-level domains are
//!   never in [`MALICIOUS_TLDS`]; malicious registrable domains are generated under
//!   [`MALICIOUS_TLDS`] only;
//! - benign IPv4 addresses never start with an octet of [`MALICIOUS_V4_OCTETS`], where all
//!   malicious addresses and CIDR ranges live; benign IPv6 addresses are under
//!   `2a01::/16`, malicious ones under `2a0b::/16`;
//! - benign file hashes come from a fixed catalogue that malicious hashes are checked against;
//!   benign e-mail addresses use benign domains; benign traffic carries no wallets.

use schemas::{EventKind, Tlp};

/// Countries with sensors (ISO 3166-1 alpha-2) and their traffic weight (1 to 3).
pub const COUNTRIES: &[(&str, u8)] = &[
    ("FR", 3),
    ("DE", 3),
    ("SG", 3),
    ("AR", 3),
    ("GB", 3),
    ("US", 3),
    ("JP", 2),
    ("BR", 2),
    ("ES", 2),
    ("IT", 2),
    ("NL", 2),
    ("PL", 2),
    ("CA", 2),
    ("MX", 2),
    ("KR", 2),
    ("AU", 2),
    ("IN", 2),
    ("ID", 2),
    ("BE", 1),
    ("CH", 1),
    ("AT", 1),
    ("CZ", 1),
    ("SE", 1),
    ("NO", 1),
    ("DK", 1),
    ("FI", 1),
    ("IE", 1),
    ("PT", 1),
    ("GR", 1),
    ("RO", 1),
    ("HU", 1),
    ("BG", 1),
    ("HR", 1),
    ("SK", 1),
    ("SI", 1),
    ("LT", 1),
    ("LV", 1),
    ("EE", 1),
    ("CL", 1),
    ("CO", 1),
    ("PE", 1),
    ("UY", 1),
    ("CR", 1),
    ("NZ", 1),
    ("MY", 1),
    ("TH", 1),
    ("PH", 1),
    ("VN", 1),
    ("ZA", 1),
    ("NG", 1),
    ("KE", 1),
    ("EG", 1),
    ("MA", 1),
    ("TR", 1),
    ("IL", 1),
    ("AE", 1),
    ("SA", 1),
    ("UA", 1),
    ("GE", 1),
    ("KZ", 1),
];

/// A private-sector partner sharing indicators under its own markings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partner {
    /// Organisation id, used as the indicators' `owner`.
    pub id: &'static str,
    /// The partner's feed, used as the indicators' `source_id`.
    pub source_id: &'static str,
    /// TLP 2.0 level the partner puts on everything it shares.
    pub tlp: Tlp,
    /// Bureaus (country codes) the partner allows.
    pub sharing: &'static [&'static str],
    /// Lowest confidence the partner gives.
    pub min_confidence: u8,
    /// Relative share of campaigns this partner publishes.
    pub weight: u8,
}

/// The partners, one of each TLP level and two at AMBER.
pub const PARTNERS: &[Partner] = &[
    Partner {
        id: "northwind-bank",
        source_id: "northwind-bank:fraud-intel",
        tlp: Tlp::Amber,
        sharing: &["FR", "DE", "GB", "NL", "SG"],
        min_confidence: 60,
        weight: 3,
    },
    Partner {
        id: "tellus-telecom",
        source_id: "tellus-telecom:netflow-intel",
        tlp: Tlp::Green,
        sharing: &[],
        min_confidence: 50,
        weight: 3,
    },
    Partner {
        id: "aegis-threatlabs",
        source_id: "aegis-threatlabs:apt-feed",
        tlp: Tlp::AmberStrict,
        sharing: &["SG"],
        min_confidence: 75,
        weight: 2,
    },
    Partner {
        id: "helios-cloud",
        source_id: "helios-cloud:abuse-desk",
        tlp: Tlp::Red,
        sharing: &["FR", "SG", "AR"],
        min_confidence: 80,
        weight: 1,
    },
    Partner {
        id: "opencert-collective",
        source_id: "opencert-collective:community",
        tlp: Tlp::Clear,
        sharing: &[],
        min_confidence: 40,
        weight: 2,
    },
    Partner {
        id: "kestrel-payments",
        source_id: "kestrel-payments:card-fraud",
        tlp: Tlp::Amber,
        sharing: &["AR", "BR", "ES", "MX", "PT", "US"],
        min_confidence: 65,
        weight: 2,
    },
];

/// Open-source feeds; their items arrive on `osint.items` and are TLP CLEAR.
pub const OSINT_FEEDS: &[&str] = &["abuse-tracker", "phish-watch", "c2-radar"];

/// Registrable domains of benign traffic (and benign mail).
pub const BENIGN_DOMAINS: &[&str] = &[
    "google.com",
    "youtube.com",
    "wikipedia.org",
    "microsoft.com",
    "office.com",
    "live.com",
    "apple.com",
    "icloud.com",
    "amazon.com",
    "amazonaws.com",
    "cloudflare.com",
    "akamaihd.net",
    "github.com",
    "gitlab.com",
    "mozilla.org",
    "debian.org",
    "ubuntu.com",
    "windowsupdate.com",
    "linkedin.com",
    "facebook.com",
    "whatsapp.net",
    "bbc.co.uk",
    "lemonde.fr",
    "spiegel.de",
    "straitstimes.com",
    "clarin.com",
    "gov.sg",
    "service-public.fr",
    "bund.de",
    "nhk.or.jp",
    "globo.com",
    "elpais.com",
    "corriere.it",
    "nos.nl",
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "zoom.us",
    "slack.com",
    "dropbox.com",
    "netflix.com",
    "spotify.com",
    "booking.com",
    "paypal.com",
    "stripe.com",
    "interpol.int",
    "europa.eu",
    "un.org",
    "who.int",
    "weather.com",
];

/// Top-level domains malicious registrable domains are generated under; no benign domain uses them.
pub const MALICIOUS_TLDS: &[&str] = &[
    "top", "xyz", "click", "icu", "cyou", "bond", "sbs", "buzz", "rest", "monster", "quest", "lol",
];

/// First octets of the IPv4 space malicious infrastructure lives in; benign traffic avoids them.
pub const MALICIOUS_V4_OCTETS: [u8; 4] = [45, 91, 185, 193];

/// First 16 bits of benign IPv6 addresses.
pub const BENIGN_V6_PREFIX: u16 = 0x2a01;
/// First 16 bits of malicious IPv6 addresses.
pub const MALICIOUS_V6_PREFIX: u16 = 0x2a0b;

/// What a sensor is; decides which event kinds it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SensorType {
    /// Network IDS: IDS alerts and flow records.
    Ids,
    /// DNS resolver logs.
    Dns,
    /// Web proxy: HTTP requests and TLS handshakes.
    Proxy,
    /// Mail gateway.
    Mail,
    /// Darknet telescope.
    Darknet,
    /// Sinkhole of seized C2 domains.
    Sinkhole,
}

impl SensorType {
    /// The name used in sensor ids (`fr-ids-01`).
    pub fn as_str(self) -> &'static str {
        match self {
            SensorType::Ids => "ids",
            SensorType::Dns => "dns",
            SensorType::Proxy => "proxy",
            SensorType::Mail => "mail",
            SensorType::Darknet => "darknet",
            SensorType::Sinkhole => "sinkhole",
        }
    }

    /// The sensor type that reports events of `kind`.
    pub fn for_kind(kind: EventKind) -> SensorType {
        match kind {
            EventKind::IdsAlert | EventKind::Flow | EventKind::Purchase => SensorType::Ids,
            EventKind::Dns => SensorType::Dns,
            EventKind::Http | EventKind::Tls => SensorType::Proxy,
            EventKind::Email => SensorType::Mail,
            EventKind::Darknet => SensorType::Darknet,
            EventKind::Sinkhole => SensorType::Sinkhole,
        }
    }
}

/// One sensor of a member country.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sensor {
    /// Sensor id, for example `fr-ids-01`.
    pub id: String,
    /// Index into [`COUNTRIES`].
    pub country: usize,
    /// What it is.
    pub sensor_type: SensorType,
}

impl Sensor {
    /// The sensor's country code.
    pub fn country_code(&self) -> &'static str {
        COUNTRIES.get(self.country).map_or("ZZ", |c| c.0)
    }
}

/// Every sensor of the world, in a fixed order: every country has an IDS, a DNS and a
/// proxy sensor; larger countries have second IDS and DNS sensors; mail, darknet and
/// sinkhole sensors are spread over the countries.
pub fn sensors() -> Vec<Sensor> {
    let mut out = Vec::new();
    for (i, &(code, size)) in COUNTRIES.iter().enumerate() {
        let cc = code.to_ascii_lowercase();
        let mut add = |t: SensorType, n: u8| {
            out.push(Sensor {
                id: format!("{cc}-{}-{n:02}", t.as_str()),
                country: i,
                sensor_type: t,
            });
        };
        add(SensorType::Ids, 1);
        add(SensorType::Dns, 1);
        add(SensorType::Proxy, 1);
        if size == 3 {
            add(SensorType::Ids, 2);
            add(SensorType::Dns, 2);
        }
        if size >= 2 || i % 3 != 2 {
            add(SensorType::Mail, 1);
        }
        if size == 3 || i % 3 == 0 {
            add(SensorType::Darknet, 1);
        }
        if size == 3 || i % 4 == 1 {
            add(SensorType::Sinkhole, 1);
        }
    }
    out
}

/// First octets benign IPv4 traffic uses: public unicast space minus the malicious octets
/// and the special ranges (0, 10, 100, 127, 169, 172, 192, 198, 203).
pub fn benign_v4_octets() -> Vec<u8> {
    const SPECIAL: [u8; 9] = [0, 10, 100, 127, 169, 172, 192, 198, 203];
    (1..=223u8)
        .filter(|o| !SPECIAL.contains(o) && !MALICIOUS_V4_OCTETS.contains(o))
        .collect()
}

/// Subdomain labels of benign hosts.
pub(crate) const BENIGN_SUBDOMAINS: &[&str] = &[
    "www", "api", "cdn", "static", "img", "login", "mail", "m", "news", "edge", "assets", "update",
    "docs", "auth", "video",
];

/// Path pieces of benign URLs.
pub(crate) const BENIGN_PATHS: &[&str] = &[
    "index.html",
    "news",
    "search",
    "assets/app.js",
    "assets/style.css",
    "api/v2/status",
    "login",
    "watch",
    "articles",
    "downloads/setup.msi",
];

/// Signatures of IDS alerts in benign traffic (policy and noise rules).
pub(crate) const BENIGN_SIGNATURES: &[&str] = &[
    "ET POLICY Outdated Windows Flash Version IE",
    "ET POLICY curl User-Agent Outbound",
    "ET INFO Observed DNS Query to .cloud TLD",
    "GPL ICMP_INFO PING *NIX",
    "ET SCAN Suspicious inbound to MSSQL port 1433",
    "ET POLICY Dropbox.com Offsite File Backup in Use",
    "SURICATA STREAM ESTABLISHED packet out of window",
];

/// Local parts of benign mail senders.
pub(crate) const BENIGN_MAIL_LOCALS: &[&str] = &[
    "newsletter",
    "no-reply",
    "support",
    "j.martin",
    "a.schmidt",
    "w.tan",
    "m.gonzalez",
    "team",
    "billing",
    "hr",
];

/// Benign domains used for mail senders.
pub(crate) const BENIGN_MAIL_DOMAINS: &[&str] = &[
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "lemonde.fr",
    "spiegel.de",
    "straitstimes.com",
    "clarin.com",
    "linkedin.com",
];

/// Public resolvers benign DNS traffic goes to (benign octets).
pub(crate) const RESOLVERS: [[u8; 4]; 4] = [
    [8, 8, 8, 8],
    [1, 1, 1, 1],
    [9, 9, 9, 9],
    [208, 67, 222, 222],
];

/// Sinkhole addresses of seized C2 (benign octets: the sinkholes are run by the good side).
pub(crate) const SINKHOLES: [[u8; 4]; 3] =
    [[87, 106, 18, 141], [148, 81, 111, 111], [204, 11, 56, 48]];

/// Malware families campaigns are labelled with.
pub(crate) const FAMILIES: &[&str] = &[
    "qakbot",
    "emotet",
    "lockbit",
    "redline",
    "asyncrat",
    "cobaltstrike",
    "icedid",
    "formbook",
    "mirai",
    "lumma",
    "pikabot",
    "darkgate",
];

/// Syllables of generated malicious domain names.
pub(crate) const SYLLABLES: &[&str] = &[
    "vex", "or", "in", "kal", "dra", "mon", "tek", "zu", "ra", "lex", "nix", "pho", "qua", "sor",
    "tri", "vel", "yx", "zan", "bri", "cor",
];

/// Subdomain labels of malicious hosts.
pub(crate) const MALICIOUS_SUBDOMAINS: &[&str] = &[
    "cdn", "api", "update", "login", "secure", "mail", "m", "static", "dl", "px", "portal",
];

/// Paths of malicious URLs.
pub(crate) const MALICIOUS_PATHS: &[&str] = &[
    "gate.php",
    "panel/login.php",
    "wp-content/update.bin",
    "api/v1/beacon",
    "invoice/view",
    "dl/payload.dll",
];

/// Local parts of malicious mail senders.
pub(crate) const MALICIOUS_MAIL_LOCALS: &[&str] = &[
    "billing",
    "invoice",
    "support",
    "hr-dept",
    "it-helpdesk",
    "payroll",
    "security-alert",
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn benign_domains_never_use_a_malicious_tld() {
        for d in BENIGN_DOMAINS.iter().chain(BENIGN_MAIL_DOMAINS) {
            let tld = d.rsplit('.').next().unwrap_or_default();
            assert!(!MALICIOUS_TLDS.contains(&tld), "{d} uses a malicious TLD");
        }
    }

    #[test]
    fn benign_octets_avoid_malicious_space() {
        let benign = benign_v4_octets();
        assert!(benign.len() > 150);
        for o in MALICIOUS_V4_OCTETS {
            assert!(!benign.contains(&o));
        }
        for ip in RESOLVERS.iter().chain(&SINKHOLES) {
            assert!(benign.contains(&ip[0]), "{ip:?}");
        }
    }

    #[test]
    fn sensors_cover_fifty_countries_and_every_kind() {
        let sensors = sensors();
        let countries: BTreeSet<_> = sensors.iter().map(|s| s.country_code()).collect();
        assert!(countries.len() >= 50, "{}", countries.len());
        let ids: BTreeSet<_> = sensors.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids.len(), sensors.len(), "sensor ids are unique");
        assert!(ids.contains("fr-ids-01"));
        for t in [
            SensorType::Ids,
            SensorType::Dns,
            SensorType::Proxy,
            SensorType::Mail,
            SensorType::Darknet,
            SensorType::Sinkhole,
        ] {
            let n = sensors
                .iter()
                .filter(|s| s.sensor_type == t)
                .map(|s| s.country)
                .collect::<BTreeSet<_>>()
                .len();
            assert!(n >= 10, "{t:?} in {n} countries");
        }
    }

    #[test]
    fn partners_span_every_tlp_level() {
        let levels: BTreeSet<_> = PARTNERS.iter().map(|p| p.tlp).collect();
        assert_eq!(
            levels,
            [
                Tlp::Clear,
                Tlp::Green,
                Tlp::Amber,
                Tlp::AmberStrict,
                Tlp::Red
            ]
            .into_iter()
            .collect()
        );
    }
}
