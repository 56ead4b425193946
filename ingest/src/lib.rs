//! Sources of Fusion's input and the way into the dataflow.
//!
//! A [`Source`] yields raw records ([`RawRecord`]: topic, partition, offset,
//! timestamp, bytes): the embedded scenario generator ([`embedded`]) and JSON-lines
//! files ([`files`]) and Kafka ([`kafka`], with its [`metrics`]). The [`Ingestor`] decodes and validates each
//! record; what fails becomes a [`schemas::DeadLetter`] with the reason and the
//! original bytes, sent to a [`DeadLetterSink`], and the pipeline goes on. What
//! passes is stamped with its logical time — the record's timestamp rounded up to
//! the epoch length, never earlier than what was already sent (a record behind the
//! clock is counted as late) — and routed to a dataflow worker ([`Router`]). Kafka's
//! decisions on logical time that a replay could not make again are kept durably
//! ([`remap`]). A source's watermark advances the logical clock
//! when no records arrive, so timers in the dataflow fire on an idle stream.

pub mod deadletter;
pub mod dedup;
pub mod desk_actions;
pub mod embedded;
pub mod files;
pub mod future;
pub mod ingestor;
pub mod kafka;
pub mod latency;
pub mod metrics;
pub mod record;
pub mod remap;
pub mod router;
pub mod stix;

pub use deadletter::{DeadLetterSink, JsonLinesDeadLetters, MemoryDeadLetters};
pub use ingestor::{IngestConfig, IngestStats, Ingestor};
pub use record::{Poll, RawRecord, Source, SourceError};
pub use router::Router;
