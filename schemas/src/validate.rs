//! Field validation shared by every message type: which field failed and why.

use std::fmt;

/// A value that parsed but breaks a rule; names the field (a JSON path) and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {reason}")]
pub struct ValidationError {
    /// Path of the offending field, for example `sharing[2]`.
    pub field: String,
    /// What is wrong with it, in words an operator can act on.
    pub reason: String,
}

impl ValidationError {
    /// A validation error for `field`.
    pub fn new(field: impl Into<String>, reason: impl fmt::Display) -> Self {
        Self {
            field: field.into(),
            reason: reason.to_string(),
        }
    }
}

/// Longest identifier accepted (ids, sensor names, officer ids, owners).
pub const MAX_ID_BYTES: usize = 128;
/// Longest free text accepted (titles, notes, descriptions).
pub const MAX_TEXT_BYTES: usize = 4096;
/// Longest observable value accepted (URLs are the longest in practice).
pub const MAX_VALUE_BYTES: usize = 2048;

/// An identifier: 1..=128 bytes of `[A-Za-z0-9._:@/+-]`, so it is safe in logs, keys and file names.
pub fn id(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if value.len() > MAX_ID_BYTES {
        return Err(ValidationError::new(
            field,
            format!("is {} bytes, at most {MAX_ID_BYTES} allowed", value.len()),
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._:@/+-".contains(*c)))
    {
        return Err(ValidationError::new(
            field,
            format!("contains {c:?}; only letters, digits and . _ : @ / + - are allowed"),
        ));
    }
    Ok(())
}

/// Free text: bounded length and no control characters other than newline and tab,
/// and no bidirectional overrides (which make a note display something else than it says).
pub fn text(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.len() > MAX_TEXT_BYTES {
        return Err(ValidationError::new(
            field,
            format!("is {} bytes, at most {MAX_TEXT_BYTES} allowed", value.len()),
        ));
    }
    no_hostile_chars(field, value)
}

/// Rejects control characters (other than `\n` and `\t`) and Unicode bidi controls.
pub fn no_hostile_chars(field: &str, value: &str) -> Result<(), ValidationError> {
    if let Some(c) = value.chars().find(|&c| {
        (c.is_control() && c != '\n' && c != '\t')
            || ('\u{202A}'..='\u{202E}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    }) {
        return Err(ValidationError::new(
            field,
            format!("contains the control character U+{:04X}", c as u32),
        ));
    }
    Ok(())
}

/// An ISO 3166-1 alpha-2 country code: two upper-case ASCII letters.
pub fn country(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.len() == 2 && value.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!("{value:?} is not an ISO 3166-1 alpha-2 code such as \"FR\""),
        ))
    }
}

/// The record's `schema_version` must be the one this release reads.
pub fn schema_version(value: u32) -> Result<(), ValidationError> {
    if value == crate::SCHEMA_VERSION {
        Ok(())
    } else {
        Err(ValidationError::new(
            "schema_version",
            format!(
                "version {value} is unknown; this release reads version {}",
                crate::SCHEMA_VERSION
            ),
        ))
    }
}
