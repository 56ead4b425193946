//! Deterministic scenario generator of Fusion's inputs, and its ground truth.
//!
//! [`Generator`] produces the input records of a fusion center — sensor events from
//! 60 member countries, partner indicators, OSINT items, and deliberately bad payloads —
//! as an iterator in non-decreasing event time, together with the exact [`Truth`]
//! Fusion must find in them. The embedded demo runs it unbounded; `fusion generate`
//! writes a finite run to files with [`write_dir`].
//!
//! # Shape of a scenario
//!
//! - **Time.** The stream is a sequence of event slots `1000 / events_per_sec` ms apart
//!   (timestamps are whole milliseconds, so several slots share one). Each slot carries
//!   one sensor event (benign, or a campaign hit) or, at `bad_record_ratio`, one bad payload.
//!   Indicator versions and OSINT items are scheduled records, emitted just before the
//!   first slot at or after their time. A record's `timestamp_ms` is its payload's
//!   natural time (`observed_at`, `modified`, `published`).
//! - **World.** See [`world`]: sensors in 60 countries, six partners covering every
//!   TLP 2.0 level, three OSINT feeds, and value spaces that keep benign traffic from
//!   ever matching planted infrastructure.
//! - **Campaigns.** One starts every [`CAMPAIGN_EVERY_EVENTS`] slots on average and
//!   lasts 8,000 to 30,000 slots. Its infrastructure (domains, C2 addresses, a /24, a URL,
//!   a payload hash, a sender address, a wallet, an IPv6 C2 — a random selection) is hit by
//!   sensors in 3 to 8 countries, half before its indicators are released in the middle
//!   of the campaign (retroactive matches, since `valid_from` lies hours to days before
//!   the first hit) and half after (live matches), including subdomains of domain
//!   indicators and addresses inside the /24. Some indicators expire (`valid_until`, or an
//!   OSINT `ttl_secs`) before the campaign ends, some get a second version with another
//!   confidence, some are revoked (OSINT: withdrawn), and some infrastructure is never
//!   published at all.
//! - **Bad records** rotate through every [`BadKind`] on every input topic.
//!
//! # Truth and determinism
//!
//! The truth is computed from the emitted records by an incremental matcher (see
//! [`truth`]), so it is exact for any prefix of the stream; the tests check it against an
//! independent brute-force oracle over the decoded records. The same [`ScenarioConfig`]
//! gives byte-identical records and truth: all randomness comes from one
//! `ChaCha8Rng` seeded with `seed`, and no hash-map order reaches the output.
//!
//! # Caveats
//!
//! - Every campaign owns a /22 of the malicious IPv4 space; after 65,536 campaigns
//!   (about nine hours at 10,000 events/s) blocks are reused, and new hits may also match
//!   old campaigns' address indicators (the truth stays exact).
//! - An unbounded generator's truth grows with every hit (a few hundred bytes per
//!   campaign hit), which is fine for demos of minutes to hours.
//! - A finite run ends after its last slot: indicator versions scheduled later are not
//!   emitted, so the last campaigns may have hits but no published indicators.

mod bad;
mod files;
mod generator;
pub mod truth;
pub mod world;

pub use bad::BadKind;
pub use files::{Summary, TRUTH_FILE, topic_file_name, write_dir};
pub use generator::{
    CAMPAIGN_EVERY_EVENTS, DEFAULT_START_MS, GeneratedRecord, Generator, ScenarioConfig,
};
pub use truth::{Campaign, Infrastructure, Truth};
