//! Oracle and golden tests of the correlation views ([`dataflow::views`]): each view
//! against a brute-force recomputation on random inputs with retractions, at every
//! closed time, on 1 and 2 workers; and golden input files against hand-checked
//! outputs. One test binary, so the dataflow's operators are compiled and linked once.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

mod common_a;
mod common_b;

mod campaigns;
mod corroboration;
mod rules;
mod sightings;
mod victims;
mod warning_lists;
