//! Dead-letter records: input that failed to decode or validate, kept with the reason.

use base64::Engine;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::decode::{DecodeError, ErrorCode};

/// One rejected input record (on `fusion.deadletter`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeadLetter {
    /// Schema version of this record.
    pub schema_version: u32,
    /// Topic the record came from (full name).
    pub topic: String,
    /// Partition, or -1 for sources without partitions.
    pub partition: i32,
    /// Offset within the partition, or line number for files.
    pub offset: i64,
    /// Bounded error code.
    pub code: ErrorCode,
    /// Field path, if one field is to blame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What was wrong, in words.
    pub detail: String,
    /// The original bytes, base64 (standard alphabet, padded).
    pub original_base64: String,
    /// Size of the original record in bytes (the bytes kept may be truncated for oversized records).
    pub original_len: u64,
    /// When it was rejected.
    pub rejected_at: Timestamp,
}

/// At most this many original bytes are kept in a dead letter (oversized records are cut).
pub const MAX_KEPT_BYTES: usize = 64 * 1024;

impl DeadLetter {
    /// A dead letter for `original` from `topic`/`partition`/`offset` that failed with `error`.
    pub fn new(
        topic: &str,
        partition: i32,
        offset: i64,
        original: &[u8],
        error: &DecodeError,
        rejected_at: Timestamp,
    ) -> Self {
        let kept = &original[..original.len().min(MAX_KEPT_BYTES)];
        Self {
            schema_version: crate::SCHEMA_VERSION,
            topic: topic.to_string(),
            partition,
            offset,
            code: error.code,
            field: error.field.clone(),
            detail: error.detail.clone(),
            original_base64: base64::engine::general_purpose::STANDARD.encode(kept),
            original_len: original.len() as u64,
            rejected_at,
        }
    }

    /// The original bytes kept.
    pub fn original(&self) -> Result<Vec<u8>, base64::DecodeError> {
        base64::engine::general_purpose::STANDARD.decode(&self.original_base64)
    }
}
