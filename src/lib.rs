//! The parts of `fusion run` that keep a guarantee, as a library with its own tests: the
//! supervision of its threads ([`supervise`]). The `fusion` binary wires them.

pub mod supervise;
