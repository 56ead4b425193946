//! Raw records and the source abstraction.

use schemas::Topic;

/// One record as a source delivers it, before decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// The topic it belongs to.
    pub topic: Topic,
    /// Partition, or -1 for sources without partitions.
    pub partition: i32,
    /// Offset in the partition (line number, from 0, for files).
    pub offset: i64,
    /// The record's timestamp, ms since the Unix epoch (Kafka's record timestamp).
    pub timestamp_ms: i64,
    /// Record key, if any.
    pub key: Option<Vec<u8>>,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// Record headers (name, value), in the order they came; empty for most records.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Set by the source when the record's own timestamp is further ahead of the source's
    /// clock than the tolerance (see [`crate::future`]): that timestamp. `timestamp_ms`
    /// then holds the source's clock, so the record neither holds other records back nor
    /// moves the watermark, and the ingestor dead-letters it (`future_timestamp`).
    pub future_timestamp_ms: Option<i64>,
}

impl RawRecord {
    /// The value of the first header called `name` (ASCII case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// What a poll of a source gave.
#[derive(Debug)]
pub enum Poll {
    /// Records, oldest first.
    Records(Vec<RawRecord>),
    /// Nothing now; more may come.
    Idle,
    /// The source is finished.
    Exhausted,
}

/// A source failed in a way that stops it.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Reading a file failed.
    #[error("cannot read {path}: {source}; check the path and permissions")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Committing offsets failed.
    #[error("cannot commit offsets: {0}; the records will be read again after a restart")]
    Commit(String),
    /// A decision on a record's logical time could not be made durable ([`crate::remap`]).
    #[error(
        "cannot store the logical times of late records: {0}; nothing was handed on or committed, a restart reads them again"
    )]
    Remap(String),
}

/// A source of raw records.
pub trait Source: Send {
    /// A short name for logs.
    fn name(&self) -> &str;
    /// Up to `max` records, or why there are none.
    fn poll(&mut self, max: usize) -> Result<Poll, SourceError>;
    /// No record with a timestamp below this will come any more (ms), if known.
    fn watermark_ms(&self) -> Option<i64>;
    /// How long rebuilding state from retained history took; none while it goes on.
    /// Sources without history are rehydrated from the start.
    fn rehydration(&self) -> Option<std::time::Duration> {
        Some(std::time::Duration::ZERO)
    }
    /// The record at `offset` of `topic`/`partition` was handed on at logical time `time_ms`
    /// (to the dataflow, or to the dead letters).
    fn on_routed(&mut self, _topic: Topic, _partition: i32, _offset: i64, _time_ms: u64) {}
    /// Everything handed on at logical times before `frontier_ms` is durable: the source
    /// may commit those records (sources without offsets do nothing).
    fn commit_before(&mut self, _frontier_ms: u64) -> Result<(), SourceError> {
        Ok(())
    }
}
