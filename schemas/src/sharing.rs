//! The one egress rule: may this alert leave for this recipient, and in what form?
//!
//! [`decide`] is used by every output path (webhooks to bureaus, partner
//! feedback, the public projection of the alert topic, the desk's per-officer
//! view). It is pure: the same alert, recipient and policy give the same
//! decision and byte-identical payload.
//!
//! Semantics (TLP 2.0, applied to the alert's marking, the strictest of every
//! contributing input's, and to each contributing source's own marking as listed in
//! its provenance: a recipient gets the alert only if every one of them allows it):
//!
//! - **RED**: only recipients named on the owner's sharing list (by recipient id,
//!   or for a bureau by its country).
//! - **AMBER+STRICT**: only the owner's own organisation.
//! - **AMBER**: recipients whose id, organisation or (bureau) country is on the owner's sharing list.
//! - **GREEN**: the community (bureaus and the fusion center's desk), and anyone
//!   on the sharing list.
//! - **CLEAR**: anyone.
//!
//! The owner's own organisation always sees its own information, but only when
//! it is the sole owner: an alert joined from two owners' inputs (owner `a+b`)
//! is never shown to `a` on the strength of `a` owning part of it. On top of
//! the TLP rule the recipient's clearance (highest TLP it may receive) caps what
//! it gets, drill alerts go only to drill recipients (and live alerts only to
//! live ones), and the recipient's interest (countries, indicator kinds,
//! minimum severity) filters what it wants.
//!
//! Personal data — victim addresses, account (e-mail) names, and the value of an
//! e-mail indicator — is replaced by keyed pseudonyms for recipients not
//! entitled to it, also where it appears inside the free-text title. A
//! pseudonym is `pseud:` + 24 hex digits of HMAC-SHA256(key, recipient id,
//! value): stable for one recipient, unlinkable across recipients without the
//! key.

use std::fmt;
use std::net::IpAddr;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::Timestamp;
use crate::alert::{Alert, CountryVictims, HourlySightings, IndicatorRef, Provenance, Severity};
use crate::indicator::IndicatorKind;
use crate::marking::{Marking, Tlp};

/// What kind of party a recipient is; GREEN reaches the community (bureaus and the desk).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientKind {
    /// A national bureau (member of the community).
    Bureau,
    /// A private-sector partner (not in the community unless on a sharing list).
    Partner,
    /// A duty officer of the fusion center's desk (member of the community).
    Officer,
    /// The public projection (e.g. the alert topic for unrestricted consumers).
    Public,
}

/// What a recipient wants to receive; empty lists mean "everything".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Interest {
    /// Only alerts seen in one of these countries (ISO 3166 alpha-2); empty = all.
    pub countries: Vec<String>,
    /// Only alerts about these indicator kinds; empty = all.
    pub kinds: Vec<IndicatorKind>,
    /// Only alerts at or above this severity; none = all.
    pub min_severity: Option<Severity>,
}

/// A party an alert may be sent to, as the sharing policy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// Recipient id (what sharing lists name, e.g. `ncb-fr`).
    pub id: String,
    /// Bureau, partner, officer or public.
    pub kind: RecipientKind,
    /// The organisation the recipient belongs to (matched against owners and sharing lists).
    pub organisation: String,
    /// For a national bureau, its country (ISO 3166 alpha-2): owners name bureaus by
    /// country in sharing lists, so the country names the bureau.
    pub country: Option<String>,
    /// The highest TLP level it may receive.
    pub clearance: Tlp,
    /// Whether it may receive personal data in clear.
    pub personal_data: bool,
    /// A drill endpoint: receives drill alerts only (and live endpoints live alerts only).
    pub drill: bool,
    /// What it wants.
    pub interest: Interest,
}

impl Recipient {
    /// The public projection: CLEAR only, no personal data, live alerts.
    pub fn public() -> Self {
        Self {
            id: "public".to_string(),
            kind: RecipientKind::Public,
            organisation: "public".to_string(),
            country: None,
            clearance: Tlp::Clear,
            personal_data: false,
            drill: false,
            interest: Interest::default(),
        }
    }
}

/// Policy inputs that are not part of the alert or the recipient.
#[derive(Clone)]
pub struct Policy {
    pseudonym_key: Vec<u8>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("pseudonym_key", &"<redacted>")
            .finish()
    }
}

impl Policy {
    /// A policy pseudonymising with `pseudonym_key` (keep it secret: with it, pseudonyms can be confirmed).
    pub fn new(pseudonym_key: impl Into<Vec<u8>>) -> Self {
        Self {
            pseudonym_key: pseudonym_key.into(),
        }
    }

    /// The keyed pseudonym of `value` in `recipient`'s view.
    pub fn pseudonym(&self, recipient: &str, value: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.pseudonym_key)
            .expect("HMAC takes keys of any length");
        mac.update(recipient.as_bytes());
        mac.update(&[0x1f]);
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        format!("pseud:{}", hex::encode(&digest[..12]))
    }
}

/// How personal data appears in a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonalData {
    /// In clear: the recipient is entitled to it.
    Clear,
    /// Replaced by keyed pseudonyms.
    Pseudonymised,
}

/// The alert as one recipient may see it (the payload of a delivery).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedAlert {
    /// Who this view is for.
    pub recipient: String,
    /// Whether personal data is in clear or pseudonymised.
    pub personal_data: PersonalData,
    /// Alert id.
    pub id: String,
    /// The rule that raised it.
    pub rule: String,
    /// Version of the rule's logic.
    pub rule_version: u32,
    /// The rule's key.
    pub key: String,
    /// Start of the event-time window.
    pub window_start: Timestamp,
    /// End of the event-time window.
    pub window_end: Timestamp,
    /// How urgent.
    pub severity: Severity,
    /// One line (personal data inside it pseudonymised where needed).
    pub title: String,
    /// The indicator matched (an e-mail indicator's value pseudonymised where needed).
    pub indicator: IndicatorRef,
    /// The marking the recipient must honour.
    pub marking: Marking,
    /// Earliest matching event time.
    pub first_seen: Timestamp,
    /// Latest matching event time.
    pub last_seen: Timestamp,
    /// Number of matching events.
    pub sightings: u64,
    /// Matching events per hour of event time.
    #[serde(default)]
    pub hourly: Vec<HourlySightings>,
    /// Distinct sensors.
    pub sensors: u32,
    /// Distinct victims.
    pub victims: u32,
    /// Victim addresses, or their pseudonyms (sorted); for a national bureau only those
    /// its own country's sensors saw.
    pub victim_ips: Vec<String>,
    /// The same per country of the sensors (a bureau: its own country only).
    pub victims_by_country: Vec<SharedVictims>,
    /// Accounts, or their pseudonyms (sorted).
    pub accounts: Vec<String>,
    /// Countries of the sensors.
    pub countries: Vec<String>,
    /// Sightings found by retroactive matching.
    pub retroactive_sightings: u64,
    /// Contributing event ids.
    pub event_ids: Vec<String>,
    /// Sightings known only from history summaries (no event ids for those).
    #[serde(default)]
    pub summarised_sightings: u64,
    /// Exercise drill.
    pub drill: bool,
    /// Input keys, contributing sources with their markings, corroborated confidence.
    pub provenance: Provenance,
}

/// The victims of one country as one recipient may see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedVictims {
    /// The country of the sensors.
    pub country: String,
    /// Victim addresses, or their pseudonyms (sorted).
    pub victim_ips: Vec<String>,
}

impl SharedAlert {
    /// The canonical bytes of this payload (compact JSON, fields in declaration order).
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain structs of strings and numbers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Why an alert is not sent to a recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Withheld {
    /// Drill alerts go to drill recipients only, live alerts to live ones.
    DrillMismatch {
        /// Whether the alert is a drill.
        alert_drill: bool,
    },
    /// TLP:RED and the recipient is not named on the sharing list.
    RedNotNamed,
    /// TLP:AMBER+STRICT and the recipient is not the owner's organisation.
    AmberStrictOutsideOwner {
        /// The owner(s).
        owner: String,
    },
    /// TLP:AMBER and neither the recipient nor its organisation is on the sharing list.
    AmberNotShared,
    /// TLP:GREEN and the recipient is outside the community and not on the sharing list.
    GreenOutsideCommunity,
    /// The marking is above the recipient's clearance.
    AboveClearance {
        /// The alert's TLP.
        tlp: Tlp,
        /// The recipient's clearance.
        clearance: Tlp,
    },
    /// The recipient's interest filters exclude it.
    NotOfInterest {
        /// Which filter.
        filter: String,
    },
}

impl fmt::Display for Withheld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Withheld::DrillMismatch { alert_drill: true } => {
                write!(f, "drill alert, and the recipient is a live endpoint")
            }
            Withheld::DrillMismatch { alert_drill: false } => {
                write!(f, "live alert, and the recipient is a drill endpoint")
            }
            Withheld::RedNotNamed => write!(
                f,
                "TLP:RED and the recipient is not named on the owner's sharing list"
            ),
            Withheld::AmberStrictOutsideOwner { owner } => write!(
                f,
                "TLP:AMBER+STRICT and the recipient is not the owner's organisation ({owner})"
            ),
            Withheld::AmberNotShared => write!(
                f,
                "TLP:AMBER and neither the recipient nor its organisation is on the owner's sharing list"
            ),
            Withheld::GreenOutsideCommunity => write!(
                f,
                "TLP:GREEN and the recipient is outside the community and not on the sharing list"
            ),
            Withheld::AboveClearance { tlp, clearance } => write!(
                f,
                "TLP:{} is above the recipient's clearance TLP:{}",
                tlp.as_str(),
                clearance.as_str()
            ),
            Withheld::NotOfInterest { filter } => {
                write!(f, "outside the recipient's interest: {filter}")
            }
        }
    }
}

/// The outcome of the egress rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send this (already redacted) payload.
    Deliver(Box<SharedAlert>),
    /// Send nothing, for this reason.
    Withhold(Withheld),
}

/// How one field of the alert is treated for one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Treatment {
    /// Sent as is.
    Sent,
    /// Sent with personal data replaced by pseudonyms.
    Pseudonymised,
    /// Not sent (the whole alert is withheld).
    NotSent,
}

/// One check of the rule and its outcome, for `explain-delivery`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Which check.
    pub name: &'static str,
    /// Whether it let the alert through.
    pub passed: bool,
    /// Why, in words.
    pub detail: String,
}

/// One field's treatment and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldNote {
    /// Field name in the payload.
    pub field: &'static str,
    /// Sent, pseudonymised or not sent.
    pub treatment: Treatment,
    /// Why.
    pub why: String,
}

/// The decision together with every check and every field's treatment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The alert id.
    pub alert_id: String,
    /// The recipient id.
    pub recipient: String,
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// Every field of the payload.
    pub fields: Vec<FieldNote>,
    /// The outcome.
    pub decision: Decision,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "alert {} -> recipient {}", self.alert_id, self.recipient)?;
        match &self.decision {
            Decision::Deliver(_) => writeln!(f, "decision: DELIVER")?,
            Decision::Withhold(why) => writeln!(f, "decision: WITHHOLD ({why})")?,
        }
        writeln!(f, "checks:")?;
        for c in &self.checks {
            let mark = if c.passed { "pass" } else { "FAIL" };
            writeln!(f, "  [{mark}] {}: {}", c.name, c.detail)?;
        }
        writeln!(f, "fields:")?;
        for n in &self.fields {
            let t = match n.treatment {
                Treatment::Sent => "sent",
                Treatment::Pseudonymised => "pseudonymised",
                Treatment::NotSent => "not sent",
            };
            writeln!(f, "  {:<22} {:<14} {}", n.field, t, n.why)?;
        }
        Ok(())
    }
}

/// The egress rule: deliver a redacted payload of `alert` to `recipient`, or withhold it.
pub fn decide(alert: &Alert, recipient: &Recipient, policy: &Policy) -> Decision {
    explain(alert, recipient, policy).decision
}

/// Whether the markings alone (TLP, owner, sharing list, clearance; every one of them)
/// let `recipient` see the alert.
///
/// Used to re-check queued deliveries and earlier recipients after the owner
/// tightens a marking; drill and interest checks are not part of it.
pub fn marking_allows<'m>(
    markings: impl IntoIterator<Item = &'m Marking>,
    recipient: &Recipient,
) -> Result<(), Withheld> {
    for marking in markings {
        tlp_rule(marking, recipient).map(|_| ())?;
        clearance_rule(marking, recipient).map(|_| ())?;
    }
    Ok(())
}

/// A rule applied to every marking of `alert`: the first refusal, or the alert
/// marking's reason to allow.
fn every_marking(
    alert: &Alert,
    recipient: &Recipient,
    rule: fn(&Marking, &Recipient) -> Result<String, Withheld>,
) -> Result<String, Withheld> {
    let allowed = rule(&alert.marking, recipient)?;
    for m in alert.markings().skip(1) {
        rule(m, recipient)?;
    }
    Ok(allowed)
}

fn sole_owner(marking: &Marking) -> Option<&str> {
    (!marking.owner.contains('+')).then_some(marking.owner.as_str())
}

/// Whether the sharing list names the recipient itself: its id, or a bureau's country.
fn named(marking: &Marking, r: &Recipient) -> bool {
    let country = match r.kind {
        RecipientKind::Bureau => r.country.as_deref(),
        _ => None,
    };
    marking
        .sharing
        .iter()
        .any(|s| *s == r.id || Some(s.as_str()) == country)
}

/// Whether the sharing list covers the recipient: named, or its organisation listed.
fn on_list(marking: &Marking, r: &Recipient) -> bool {
    named(marking, r) || marking.sharing.contains(&r.organisation)
}

fn tlp_rule(marking: &Marking, r: &Recipient) -> Result<String, Withheld> {
    if sole_owner(marking) == Some(r.organisation.as_str()) {
        return Ok(format!(
            "the recipient belongs to the owner ({}), which sees its own information",
            marking.owner
        ));
    }
    match marking.tlp {
        Tlp::Clear => Ok("TLP:CLEAR may go to anyone".to_string()),
        Tlp::Green => {
            if matches!(r.kind, RecipientKind::Bureau | RecipientKind::Officer) {
                Ok("TLP:GREEN and the recipient is in the community".to_string())
            } else if on_list(marking, r) {
                Ok("TLP:GREEN and the recipient is on the sharing list".to_string())
            } else {
                Err(Withheld::GreenOutsideCommunity)
            }
        }
        Tlp::Amber => {
            if on_list(marking, r) {
                Ok("TLP:AMBER and the recipient is on the owner's sharing list".to_string())
            } else {
                Err(Withheld::AmberNotShared)
            }
        }
        Tlp::AmberStrict => Err(Withheld::AmberStrictOutsideOwner {
            owner: marking.owner.clone(),
        }),
        Tlp::Red => {
            if named(marking, r) {
                Ok("TLP:RED and the recipient is named on the sharing list".to_string())
            } else {
                Err(Withheld::RedNotNamed)
            }
        }
    }
}

fn clearance_rule(marking: &Marking, r: &Recipient) -> Result<String, Withheld> {
    if marking.tlp <= r.clearance {
        Ok(format!(
            "TLP:{} is within clearance TLP:{}",
            marking.tlp.as_str(),
            r.clearance.as_str()
        ))
    } else {
        Err(Withheld::AboveClearance {
            tlp: marking.tlp,
            clearance: r.clearance,
        })
    }
}

fn interest_rule(alert: &Alert, i: &Interest) -> Result<String, Withheld> {
    if !i.countries.is_empty() && !alert.countries.iter().any(|c| i.countries.contains(c)) {
        return Err(Withheld::NotOfInterest {
            filter: format!(
                "seen in [{}], none of [{}]",
                alert.countries.join(", "),
                i.countries.join(", ")
            ),
        });
    }
    if !i.kinds.is_empty() && !i.kinds.contains(&alert.indicator.kind) {
        return Err(Withheld::NotOfInterest {
            filter: format!(
                "indicator kind {} not wanted",
                alert.indicator.kind.as_str()
            ),
        });
    }
    if let Some(min) = i.min_severity
        && alert.severity < min
    {
        return Err(Withheld::NotOfInterest {
            filter: format!("severity {:?} below minimum {:?}", alert.severity, min),
        });
    }
    Ok("matches the recipient's countries, kinds and minimum severity".to_string())
}

/// The egress rule with its reasons: every check, every field, and the decision.
pub fn explain(alert: &Alert, recipient: &Recipient, policy: &Policy) -> Explanation {
    let drill = if alert.drill == recipient.drill {
        Ok(if alert.drill {
            "drill alert to a drill endpoint".to_string()
        } else {
            "live alert to a live endpoint".to_string()
        })
    } else {
        Err(Withheld::DrillMismatch {
            alert_drill: alert.drill,
        })
    };
    let results = [
        ("drill", drill),
        ("tlp", every_marking(alert, recipient, tlp_rule)),
        ("clearance", every_marking(alert, recipient, clearance_rule)),
        ("interest", interest_rule(alert, &recipient.interest)),
    ];
    let mut checks = Vec::with_capacity(results.len());
    let mut first_failure = None;
    for (name, result) in results {
        match result {
            Ok(detail) => checks.push(Check {
                name,
                passed: true,
                detail,
            }),
            Err(why) => {
                checks.push(Check {
                    name,
                    passed: false,
                    detail: why.to_string(),
                });
                first_failure.get_or_insert(why);
            }
        }
    }
    let decision = match first_failure {
        Some(why) => Decision::Withhold(why),
        None => Decision::Deliver(Box::new(redact(alert, recipient, policy))),
    };
    let fields = field_notes(alert, recipient, &decision);
    Explanation {
        alert_id: alert.id.clone(),
        recipient: recipient.id.clone(),
        checks,
        fields,
        decision,
    }
}

/// Every personal-data value of an alert, as text (victim addresses, accounts, an e-mail indicator's value).
pub fn personal_values(alert: &Alert) -> Vec<String> {
    let mut values: Vec<String> = alert
        .victim_addresses()
        .map(|ip| ip.to_string())
        .chain(alert.accounts.iter().cloned())
        .collect();
    if alert.indicator.kind == IndicatorKind::Email {
        values.push(alert.indicator.value.clone());
    }
    values.retain(|v| !v.is_empty());
    values.sort();
    values.dedup();
    values
}

fn redact(alert: &Alert, r: &Recipient, policy: &Policy) -> SharedAlert {
    let clear = r.personal_data;
    let p = |v: &str| -> String {
        if clear {
            v.to_string()
        } else {
            policy.pseudonym(&r.id, v)
        }
    };
    // A national bureau gets the infected machines of its own country only.
    let by_country: Vec<&CountryVictims> = alert
        .victims_by_country
        .iter()
        .filter(|v| r.kind != RecipientKind::Bureau || r.country.as_deref() == Some(&v.country))
        .collect();
    let shown: Vec<IpAddr> = if r.kind == RecipientKind::Bureau {
        let mut ips: Vec<IpAddr> = by_country
            .iter()
            .flat_map(|v| v.victim_ips.iter().copied())
            .collect();
        ips.sort();
        ips.dedup();
        ips
    } else {
        alert.victim_ips.clone()
    };
    let mut victim_ips: Vec<String> = shown.iter().map(|ip| p(&ip.to_string())).collect();
    let mut accounts: Vec<String> = alert.accounts.iter().map(|a| p(a)).collect();
    victim_ips.sort();
    accounts.sort();
    let victims_by_country = by_country
        .iter()
        .map(|v| {
            let mut ips: Vec<String> = v.victim_ips.iter().map(|ip| p(&ip.to_string())).collect();
            ips.sort();
            SharedVictims {
                country: v.country.clone(),
                victim_ips: ips,
            }
        })
        .collect();
    let mut indicator = alert.indicator.clone();
    let mut provenance = alert.provenance.clone();
    // Without the right to personal data every value is replaced; with it, the victims
    // of other countries still are for a bureau.
    let values: Vec<String> = if clear {
        alert
            .victim_addresses()
            .filter(|ip| !shown.contains(ip))
            .map(|ip| ip.to_string())
            .collect()
    } else {
        personal_values(alert)
    };
    let pseudonym = |v: &str| policy.pseudonym(&r.id, v);
    let title = replace_whole(&alert.title, &values, pseudonym);
    for key in &mut provenance.input_keys {
        *key = replace_whole(key, &values, pseudonym);
    }
    if !clear && indicator.kind == IndicatorKind::Email {
        indicator.value = policy.pseudonym(&r.id, &indicator.value);
    }
    SharedAlert {
        recipient: r.id.clone(),
        personal_data: if clear {
            PersonalData::Clear
        } else {
            PersonalData::Pseudonymised
        },
        id: alert.id.clone(),
        rule: alert.rule.clone(),
        rule_version: alert.rule_version,
        key: alert.key.clone(),
        window_start: alert.window_start,
        window_end: alert.window_end,
        severity: alert.severity,
        title,
        indicator,
        marking: alert.marking.clone(),
        first_seen: alert.first_seen,
        last_seen: alert.last_seen,
        sightings: alert.sightings,
        hourly: alert.hourly.clone(),
        sensors: alert.sensors,
        victims: alert.victims,
        victim_ips,
        victims_by_country,
        accounts,
        countries: alert.countries.clone(),
        retroactive_sightings: alert.retroactive_sightings,
        event_ids: alert.event_ids.clone(),
        summarised_sightings: alert.summarised_sightings,
        drill: alert.drill,
        provenance,
    }
}

/// `text` with every occurrence of one of `values` that stands whole replaced by `with`
/// of it. A value stands whole unless a letter or digit touches it, or a '.' joining one
/// (and a ':' too, for a value with colons: an IPv6 address); so `10.0.1.2` is replaced in
/// "from 10.0.1.2:443." and "email:10.0.1.2", but not inside `10.0.1.25`. Where matches
/// overlap, the one starting first wins, then the longest.
fn replace_whole(text: &str, values: &[String], with: impl Fn(&str) -> String) -> String {
    let mut found: Vec<(usize, &str)> = values
        .iter()
        .filter(|v| !v.is_empty())
        .flat_map(|v| {
            text.match_indices(v.as_str())
                .filter(|&(at, _)| stands_whole(text, at, v))
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.len().cmp(&a.1.len())));
    let mut out = String::with_capacity(text.len());
    let mut done = 0;
    for (at, v) in found {
        if at >= done {
            out.push_str(&text[done..at]);
            out.push_str(&with(v));
            done = at + v.len();
        }
    }
    out.push_str(&text[done..]);
    out
}

fn stands_whole(text: &str, at: usize, value: &str) -> bool {
    let joins = |c: char| c == '.' || (c == ':' && value.contains(':'));
    let touches = |next: Option<char>, beyond: Option<char>| match next {
        Some(c) if c.is_alphanumeric() => true,
        Some(c) if joins(c) => beyond.is_some_and(char::is_alphanumeric),
        _ => false,
    };
    let mut before = text[..at].chars().rev();
    let mut after = text[at + value.len()..].chars();
    !touches(before.next(), before.next()) && !touches(after.next(), after.next())
}

fn field_notes(alert: &Alert, r: &Recipient, decision: &Decision) -> Vec<FieldNote> {
    const PLAIN: [&str; 19] = [
        "id",
        "rule",
        "rule_version",
        "key",
        "window_start",
        "window_end",
        "severity",
        "marking",
        "first_seen",
        "last_seen",
        "sightings",
        "hourly",
        "sensors",
        "victims",
        "countries",
        "retroactive_sightings",
        "event_ids",
        "summarised_sightings",
        "drill",
    ];
    if let Decision::Withhold(why) = decision {
        let mut all: Vec<&'static str> = PLAIN.to_vec();
        all.extend([
            "title",
            "indicator",
            "victim_ips",
            "victims_by_country",
            "accounts",
            "provenance",
        ]);
        return all
            .into_iter()
            .map(|field| FieldNote {
                field,
                treatment: Treatment::NotSent,
                why: format!("alert withheld: {why}"),
            })
            .collect();
    }
    let personal = |present: bool, what: &str| -> (Treatment, String) {
        if !present {
            (Treatment::Sent, format!("no {what} in this alert"))
        } else if r.personal_data {
            (
                Treatment::Sent,
                format!("{what}: personal data, and the recipient is entitled to it"),
            )
        } else {
            (
                Treatment::Pseudonymised,
                format!("{what}: personal data, and the recipient is not entitled to it"),
            )
        }
    };
    let mut notes: Vec<FieldNote> = PLAIN
        .iter()
        .map(|&field| FieldNote {
            field,
            treatment: Treatment::Sent,
            why: "not personal data; allowed by the marking".to_string(),
        })
        .collect();
    let values = personal_values(alert);
    let title_has = values.iter().any(|v| alert.title.contains(v.as_str()));
    let (t, why) = personal(title_has, "personal data in the title");
    notes.push(FieldNote {
        field: "title",
        treatment: t,
        why,
    });
    let email = alert.indicator.kind == IndicatorKind::Email;
    let (t, why) = if email {
        personal(true, "e-mail indicator value")
    } else {
        (
            Treatment::Sent,
            "the indicator is the owner's intelligence, allowed by the marking".to_string(),
        )
    };
    notes.push(FieldNote {
        field: "indicator",
        treatment: t,
        why,
    });
    let (t, mut why) = personal(
        alert.victim_addresses().next().is_some(),
        "victim addresses",
    );
    if r.kind == RecipientKind::Bureau {
        why.push_str(&format!(
            "; a national bureau gets only those its own country's sensors saw ({})",
            r.country
                .as_deref()
                .unwrap_or("no country configured: none")
        ));
    }
    for field in ["victim_ips", "victims_by_country"] {
        notes.push(FieldNote {
            field,
            treatment: t,
            why: why.clone(),
        });
    }
    let (t, why) = personal(!alert.accounts.is_empty(), "accounts");
    notes.push(FieldNote {
        field: "accounts",
        treatment: t,
        why,
    });
    let keys_have = alert
        .provenance
        .input_keys
        .iter()
        .any(|k| values.iter().any(|v| k.contains(v.as_str())));
    let (t, why) = personal(keys_have, "personal data in the input keys");
    notes.push(FieldNote {
        field: "provenance",
        treatment: t,
        why,
    });
    notes
}

#[cfg(test)]
mod tests {
    use super::replace_whole;

    fn scrub(text: &str, values: &[&str]) -> String {
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        replace_whole(text, &values, |v| format!("<{v}>"))
    }

    #[test]
    fn a_value_is_replaced_only_where_it_stands_whole() {
        // The garbling the substring replacement did: a foreign victim inside an own one.
        assert_eq!(
            scrub("from 10.0.1.25 and 10.0.1.2.", &["10.0.1.2"]),
            "from 10.0.1.25 and <10.0.1.2>."
        );
        assert_eq!(
            scrub("110.0.1.2 1.10.0.1.2 10.0.1.2.5", &["10.0.1.2"]),
            "110.0.1.2 1.10.0.1.2 10.0.1.2.5"
        );
        // Ports, key prefixes and punctuation are not part of the value.
        assert_eq!(
            scrub(
                "10.0.1.2:443 ip:10.0.1.2 (10.0.1.2),bob@mail.example",
                &["10.0.1.2", "bob@mail.example"]
            ),
            "<10.0.1.2>:443 ip:<10.0.1.2> (<10.0.1.2>),<bob@mail.example>"
        );
        // An IPv6 address goes on past a colon.
        assert_eq!(
            scrub("fe80::1:5 [fe80::1]:443", &["fe80::1"]),
            "fe80::1:5 [<fe80::1>]:443"
        );
    }

    #[test]
    fn overlapping_values_are_replaced_once_the_longest_first() {
        assert_eq!(
            scrub("mail bob@mail.example, bob", &["bob", "bob@mail.example"]),
            "mail <bob@mail.example>, <bob>"
        );
        // A replacement is never searched again.
        assert_eq!(scrub("a b", &["a", "<a>"]), "<a> b");
        assert_eq!(scrub("", &["a", ""]), "");
    }
}
