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
}

/// A source of raw records.
pub trait Source: Send {
    /// A short name for logs.
    fn name(&self) -> &str;
    /// Up to `max` records, or why there are none.
    fn poll(&mut self, max: usize) -> Result<Poll, SourceError>;
    /// No record with a timestamp below this will come any more (ms), if known.
    fn watermark_ms(&self) -> Option<i64>;
}
