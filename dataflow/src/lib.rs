//! Fusion's timely/differential computation: observables, live and retroactive
//! matching, alerts. Pure and deterministic: no I/O, no wall clock.
//!
//! Logical time ([`Time`]) is ingestion time in milliseconds since the Unix epoch,
//! assigned by ingest. Every view is a function from collections to collections;
//! every decision (matches, alert ids and versions) is a function of the inputs
//! and logical time, so a replay of the same inputs gives the same outputs on any
//! number of workers.
//!
//! - [`observables`]: what a sensor event can be matched on.
//! - [`indicators`]: the current version of each indicator (latest wins, revocation retracts).
//! - [`history`]: the one matching join: events meet indicators live, indicators meet the
//!   history retained in two tiers (raw evidence, then hourly summaries) retroactively.
//! - [`evidence`]: the matches kept per alert window, their aggregate, and alert expiry.
//! - [`matching`]: the raw matches as whole records, for the views.
//! - [`alerts`]: alerts with content-hash ids from the evidence, corroborated.
//! - [`snapshot`]: turns output updates into consistent per-time alert changes.
//! - [`roster`]: the follow-the-sun roster: who is on duty at every instant, and its check.
//! - [`roster_versions`], [`duty_clock`], [`routing`]: follow-the-sun ownership, officer
//!   actions, handover digests, SLA escalation.
//! - [`views`]: correlation views (sightings, summaries, corroboration, warning lists, victims,
//!   campaigns, rules).
//! - [`runtime`]: runs the dataflow on timely workers fed by channels of [`schemas::Feed`].

pub mod alerts;
pub mod assembly;
pub mod duty_clock;
pub mod evidence;
pub mod history;
pub mod indicators;
pub mod matching;
pub mod observables;
pub mod roster;
pub mod roster_versions;
pub mod routing;
pub mod runtime;
pub mod shared;
pub mod snapshot;
#[cfg(test)]
mod test_support;
mod time_order;
pub mod views;

/// Logical time: ingestion time in milliseconds since the Unix epoch.
pub type Time = u64;
