//! Alerts and their changes (on `fusion.alerts`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::indicator::{IndicatorKind, SourceKind};
use crate::marking::Marking;

/// How urgent an alert is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Until the end of the shift.
    Low,
    /// Within the hour.
    Medium,
    /// Within 15 minutes.
    High,
    /// Within 5 minutes.
    Critical,
}

/// The indicator an alert is about.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct IndicatorRef {
    /// Indicator id.
    pub id: String,
    /// Kind of its value.
    pub kind: IndicatorKind,
    /// Its value.
    pub value: String,
    /// Partner or OSINT.
    pub source_kind: SourceKind,
    /// The partner or feed.
    pub source_id: String,
    /// The owner's confidence, 0 to 100.
    pub confidence: u8,
    /// When the owner created it.
    pub created: Timestamp,
}

/// An alert: content only, derived deterministically from its inputs.
///
/// The id is a content hash of (rule, key, window), so a restart or a replay
/// re-derives the same id. Versions are carried by [`AlertChange`].
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct Alert {
    /// Schema version of this record.
    pub schema_version: u32,
    /// Content hash of (rule, key, window), hex.
    pub id: String,
    /// The rule that raised it.
    pub rule: String,
    /// Version of the rule's logic.
    pub rule_version: u32,
    /// The rule's key (for indicator matches: the indicator id).
    pub key: String,
    /// Start of the event-time window (inclusive).
    pub window_start: Timestamp,
    /// End of the event-time window (exclusive).
    pub window_end: Timestamp,
    /// How urgent.
    pub severity: Severity,
    /// One line for the desk.
    pub title: String,
    /// The indicator matched.
    pub indicator: IndicatorRef,
    /// The strictest marking of every contributing input.
    pub marking: Marking,
    /// Earliest matching event time.
    pub first_seen: Timestamp,
    /// Latest matching event time.
    pub last_seen: Timestamp,
    /// Number of matching events.
    pub sightings: u64,
    /// Matching events per UTC hour of event time, for each hour with any, in time
    /// order: the trend within the window.
    #[serde(default)]
    pub hourly: Vec<HourlySightings>,
    /// Distinct sensors that saw it.
    pub sensors: u32,
    /// Number of distinct victim addresses.
    pub victims: u32,
    /// Victim addresses, sorted (the first 50). Personal data: redacted or
    /// pseudonymised for recipients not entitled to it.
    pub victim_ips: Vec<std::net::IpAddr>,
    /// The victim addresses per country of the sensors that saw them, sorted by country
    /// (the first 50 of each). Personal data: a national bureau receives only its own
    /// country's (the infected machines it must notify), other recipients all of them.
    #[serde(default)]
    pub victims_by_country: Vec<CountryVictims>,
    /// E-mail addresses (accounts) seen in the matching events, sorted (the first 50).
    /// Personal data, like `victim_ips`.
    pub accounts: Vec<String>,
    /// Countries of the sensors, sorted.
    pub countries: Vec<String>,
    /// Matching events that arrived before the indicator was published (found by retroactive matching).
    pub retroactive_sightings: u64,
    /// Ids of the contributing events (the first 20, sorted); only events still held as
    /// raw evidence when they matched are listed (see `summarised_sightings`).
    pub event_ids: Vec<String>,
    /// Of `sightings`, how many are known only from history summaries (per observable,
    /// sensor and hour: counts, first and last seen) because they had aged out of the
    /// raw evidence window when the indicator met them: no event ids, victims or
    /// accounts for those. Zero when all the evidence is raw.
    #[serde(default)]
    pub summarised_sightings: u64,
    /// Set for alerts of an exercise drill.
    pub drill: bool,
    /// Where the alert comes from: the sources vouching for its observable and how they
    /// set its severity and marking.
    #[serde(default)]
    pub provenance: Provenance,
}

/// The matching events of one hour.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct HourlySightings {
    /// Start of the hour.
    pub hour: Timestamp,
    /// Matching events with an event time in it.
    pub sightings: u64,
}

/// The victim addresses seen by the sensors of one country.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct CountryVictims {
    /// The country (ISO 3166 alpha-2) of the sensors.
    pub country: String,
    /// Distinct victim addresses, sorted (the first 50).
    pub victim_ips: Vec<std::net::IpAddr>,
}

impl Alert {
    /// Every victim address of the alert: `victim_ips` and each country's, without repeats.
    pub fn victim_addresses(&self) -> impl Iterator<Item = std::net::IpAddr> {
        let mut all: Vec<std::net::IpAddr> = self
            .victim_ips
            .iter()
            .chain(self.victims_by_country.iter().flat_map(|v| &v.victim_ips))
            .copied()
            .collect();
        all.sort();
        all.dedup();
        all.into_iter()
    }

    /// Every marking the egress rule applies: the alert's own (the strictest of its
    /// inputs), then each contributing source's.
    pub fn markings(&self) -> impl Iterator<Item = &Marking> {
        std::iter::once(&self.marking).chain(self.provenance.sources.iter().map(|c| &c.marking))
    }
}

/// Why an alert says what it says: its input keys, every feed vouching for its
/// observable with that feed's marking, and their corroborated confidence. The sensor
/// evidence is the alert's own sightings (`event_ids`, `sensors`, `countries`).
#[derive(
    Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct Provenance {
    /// The observable's match key (such as `ip:203.0.113.7`), the rule's input key.
    pub input_keys: Vec<String>,
    /// Every feed with a current indicator on the observable, sorted (partners first).
    pub sources: Vec<Contributor>,
    /// Combined confidence of those independent feeds, 0 to 100 (Fusion's corroboration
    /// formula: independent sources add up; older reports weigh less).
    pub corroborated_confidence: u8,
}

/// One feed vouching for an alert's observable.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct Contributor {
    /// Partner or OSINT feed.
    pub kind: ContributorKind,
    /// The partner or feed id.
    pub id: String,
    /// Its indicator on the observable.
    pub indicator_id: String,
    /// The indicator's confidence, 0 to 100.
    pub confidence: u8,
    /// When the indicator version was made (its `modified` time).
    pub reported: Timestamp,
    /// The indicator's marking.
    pub marking: Marking,
}

/// What kind of feed vouches for an observable.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ContributorKind {
    /// A private-sector partner feed.
    Partner,
    /// An open-source feed.
    Osint,
}

/// How an alert changed at a closed logical time.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// The alert is new.
    Opened,
    /// The alert's content changed.
    Updated,
    /// The alert was withdrawn (for example its indicator was revoked).
    Retracted,
    /// The alert aged out: its window has passed and it did not change for the grace
    /// period, so it is closed and its state is dropped everywhere. Unlike a retraction
    /// it withdraws nothing: its last version stands as it was delivered.
    Expired,
}

/// A change of one alert at one closed logical time (one record on `fusion.alerts`).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct AlertChange {
    /// Opened, updated, retracted or expired.
    pub change: ChangeKind,
    /// The logical time (ms) at which this version became true; increases per alert id.
    pub version: u64,
    /// The alert's content at this version (for a retraction or an expiry: the last content).
    pub alert: Alert,
}
