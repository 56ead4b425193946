//! The parts of `fusion run` that keep a guarantee, as a library with its own tests: the
//! output and commit loop ([`output`]: nothing is committed before every sink has made it
//! durable) and the supervision of the run's threads ([`supervise`]). The `fusion` binary
//! wires them.

pub mod output;
pub mod supervise;
