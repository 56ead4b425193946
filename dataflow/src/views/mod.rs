//! Correlation views: functions from collections to collections that a duty officer
//! and a national bureau act on. Each view has a brute-force oracle test
//! (`dataflow/tests/views_*.rs`) and a golden test on 1 and 2 workers.
//!
//! - [`sightings`]: per indicator, first/last seen, distinct sensors, victims, countries, per-hour counts.
//! - [`corroboration`]: independent sources per observable and the confidence they give.
//! - [`warning_lists`]: known-benign values that suppress matches.
//! - [`victims`]: botnet / C2 victims per C2 indicator and victim country.
//! - [`campaigns`]: connected components over shared infrastructure.
//! - [`rules`]: criteria, threshold and spike rules declared in TOML.

pub mod campaigns;
pub mod corroboration;
pub mod rules;
pub mod sightings;
pub mod victims;
pub mod warning_lists;
