//! Strict decoding of topic records: bytes → validated value, or an error that names
//! the field and a bounded code.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::input::Input;
use crate::topic::Topic;
use crate::validate::ValidationError;
use crate::{DeskAction, Indicator, OsintItem, SensorEvent, Text};

/// Why a record was rejected; a bounded set, usable as a metric label.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not valid UTF-8.
    InvalidUtf8,
    /// Not JSON, or truncated JSON.
    MalformedJson,
    /// A field has the wrong JSON type.
    WrongType,
    /// A required field is absent.
    MissingField,
    /// A field this schema does not have.
    UnknownField,
    /// A field parsed but its value breaks a rule.
    InvalidValue,
    /// `schema_version` is not one this release reads.
    UnknownSchemaVersion,
    /// Larger than the configured maximum record size.
    Oversized,
    /// A STIX pattern or construct Fusion does not evaluate.
    UnsupportedPattern,
    /// A native format this decoder does not read (for example an EVE event type).
    UnsupportedFormat,
    /// A desk action by an officer of a center that does not own the alert.
    NotOwner,
    /// The record arrived on a topic Fusion does not read.
    UnknownTopic,
    /// The record's timestamp is further ahead of its source's clock than the tolerance:
    /// taken as it is, it would move the logical clock past everyone else's records.
    FutureTimestamp,
    /// A second record with an event id already seen within the evidence window, with
    /// different content.
    DuplicateConflict,
}

impl ErrorCode {
    /// The code as written in dead letters and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidUtf8 => "invalid_utf8",
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::WrongType => "wrong_type",
            ErrorCode::MissingField => "missing_field",
            ErrorCode::UnknownField => "unknown_field",
            ErrorCode::InvalidValue => "invalid_value",
            ErrorCode::UnknownSchemaVersion => "unknown_schema_version",
            ErrorCode::Oversized => "oversized",
            ErrorCode::UnsupportedPattern => "unsupported_pattern",
            ErrorCode::UnsupportedFormat => "unsupported_format",
            ErrorCode::NotOwner => "not_owner",
            ErrorCode::UnknownTopic => "unknown_topic",
            ErrorCode::FutureTimestamp => "future_timestamp",
            ErrorCode::DuplicateConflict => "duplicate_conflict",
        }
    }
}

/// A record that could not be decoded: code, the field to blame if any, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {detail}", code.as_str(), field.as_ref().map(|f| format!(" at `{f}`")).unwrap_or_default())]
pub struct DecodeError {
    /// Bounded error code.
    pub code: ErrorCode,
    /// Path of the field to blame, if one is.
    pub field: Option<String>,
    /// What was wrong.
    pub detail: String,
}

impl DecodeError {
    /// A decode error with `code` about `field`.
    pub fn new(code: ErrorCode, field: Option<String>, detail: impl Into<String>) -> Self {
        Self {
            code,
            field,
            detail: detail.into(),
        }
    }
}

impl From<ValidationError> for DecodeError {
    fn from(e: ValidationError) -> Self {
        let code = if e.field == "schema_version" {
            ErrorCode::UnknownSchemaVersion
        } else {
            ErrorCode::InvalidValue
        };
        DecodeError::new(code, Some(e.field), e.reason)
    }
}

#[derive(Deserialize)]
struct VersionPeek {
    schema_version: Option<serde_json::Value>,
}

/// Decodes one JSON value of type `T`, checking UTF-8 and the schema version first so the
/// error code says what really went wrong.
pub fn decode_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, DecodeError> {
    // A good record decodes in one pass (UTF-8 checked once for the whole record, which
    // costs less than `from_slice`'s check of each string; serde_json checks syntax as it
    // goes; the schema version is checked by validation). Only a failure takes the passes
    // below, which find the error code that says what really went wrong.
    if let Ok(text) = std::str::from_utf8(bytes)
        && let Ok(value) = serde_json::from_str::<T>(text)
    {
        return Ok(value);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        DecodeError::new(
            ErrorCode::InvalidUtf8,
            None,
            format!("byte {} is not valid UTF-8", e.valid_up_to()),
        )
    })?;
    // Syntax first, on its own: serde_json reports some type errors (an enum given a
    // number) as syntax errors, so the typed parse alone cannot tell them apart.
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        return Err(DecodeError::new(
            ErrorCode::MalformedJson,
            None,
            e.to_string(),
        ));
    }
    // Every record is a JSON object; serde would call an array "a struct of the wrong length".
    if !text.trim_start().starts_with('{') {
        let found = match text.trim_start().as_bytes().first() {
            Some(b'[') => "an array",
            Some(b'"') => "a string",
            Some(b't' | b'f') => "a boolean",
            Some(b'n') => "null",
            _ => "a number",
        };
        return Err(DecodeError::new(
            ErrorCode::WrongType,
            None,
            format!("a record is a JSON object; found {found}"),
        ));
    }
    // A record of another version may have another shape: look at the version first.
    if let Ok(VersionPeek {
        schema_version: Some(v),
    }) = serde_json::from_str::<VersionPeek>(text)
        && v.as_u64() != Some(u64::from(crate::SCHEMA_VERSION))
    {
        return Err(DecodeError::new(
            ErrorCode::UnknownSchemaVersion,
            Some("schema_version".into()),
            format!(
                "version {v} is unknown; this release reads version {}",
                crate::SCHEMA_VERSION
            ),
        ));
    }
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        let code = if msg.starts_with("missing field") {
            ErrorCode::MissingField
        } else if msg.starts_with("unknown field") {
            ErrorCode::UnknownField
        } else if msg.starts_with("invalid type")
            || msg.starts_with("expected")
            || inner.is_syntax()
        {
            // The syntax is valid (checked above), so a "syntax" error here is a value of the wrong type.
            ErrorCode::WrongType
        } else {
            ErrorCode::InvalidValue
        };
        let field = if path == "." {
            // serde names a missing field only in its message.
            msg.split('`').nth(1).map(str::to_string)
        } else if code == ErrorCode::MissingField {
            msg.split('`').nth(1).map(|f| format!("{path}.{f}"))
        } else {
            Some(path)
        };
        DecodeError::new(code, field, msg)
    })
}

/// Decodes and validates one record of `fusion.sensor.events`, as [`decode_record`] does,
/// returning the event itself: ingest's path for most records, which moves no [`Input`]
/// (sized for an indicator) around.
pub fn decode_event(bytes: &[u8]) -> Result<SensorEvent, DecodeError> {
    let ev: SensorEvent = decode_json(bytes)?;
    ev.validate()?;
    Ok(ev)
}

/// [`decode_event`] in place: the event's text is borrowed from `bytes` (owned only where
/// the record escapes characters in it). The same checks, errors and values.
pub fn decode_event_in(bytes: &[u8]) -> Result<SensorEvent<Text<'_>>, DecodeError> {
    let ev: SensorEvent<Text<'_>> = decode_json(bytes)?;
    ev.validate()?;
    Ok(ev)
}

/// Decodes and validates one record read from `topic` into the dataflow's input.
/// OSINT items become indicators with source kind `osint`.
pub fn decode_record(topic: Topic, bytes: &[u8]) -> Result<Input, DecodeError> {
    match topic {
        Topic::SensorEvents => decode_event(bytes).map(Input::Event),
        Topic::PartnerIndicators => {
            let ind: Indicator = decode_json(bytes)?;
            ind.validate()?;
            Ok(Input::Indicator(ind))
        }
        Topic::OsintItems => {
            let item: OsintItem = decode_json(bytes)?;
            Ok(Input::Indicator(item.to_indicator()?))
        }
        Topic::DeskActions => {
            let action: DeskAction = decode_json(bytes)?;
            action.validate()?;
            Ok(Input::Action(action))
        }
        Topic::Alerts | Topic::Deadletter | Topic::Feedback => Err(DecodeError::new(
            ErrorCode::UnknownTopic,
            None,
            format!("topic {topic} is an output; Fusion does not read it"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EVENT: &str = r#"{"schema_version":1,"event_id":"e1","sensor_id":"fr-ids-1","country":"FR","observed_at":"2026-11-23T10:00:00Z","kind":"dns","domain":"a.evil.example"}"#;

    fn err(topic: Topic, s: &[u8]) -> DecodeError {
        decode_record(topic, s).expect_err("must be rejected")
    }

    #[test]
    fn decodes_a_valid_event() {
        let Input::Event(ev) = decode_record(Topic::SensorEvents, EVENT.as_bytes()).unwrap() else {
            panic!("not an event")
        };
        assert_eq!(ev.domain.as_deref(), Some("a.evil.example"));
    }

    #[test]
    fn a_record_that_is_not_an_object_is_the_wrong_type_on_every_topic() {
        for topic in Topic::INPUTS {
            for (payload, found) in [
                (&b"[]"[..], "an array"),
                (b" [1,2]", "an array"),
                (b"\"x\"", "a string"),
                (b"42", "a number"),
                (b"null", "null"),
                (b"true", "a boolean"),
            ] {
                let e = err(topic, payload);
                assert_eq!(e.code, ErrorCode::WrongType, "{topic}: {e}");
                assert!(e.detail.ends_with(found), "{topic}: {e}");
            }
        }
    }

    #[test]
    fn truncated_json_is_malformed() {
        let e = err(Topic::SensorEvents, &EVENT.as_bytes()[..40]);
        assert_eq!(e.code, ErrorCode::MalformedJson);
    }

    #[test]
    fn invalid_utf8_is_named() {
        let mut b = EVENT.as_bytes().to_vec();
        b[30] = 0xff;
        assert_eq!(err(Topic::SensorEvents, &b).code, ErrorCode::InvalidUtf8);
    }

    #[test]
    fn wrong_type_names_the_field() {
        let s = EVENT
            .replace(r#""dst""#, "")
            .replace(r#""kind":"dns""#, r#""kind":"dns","dst_port":"eighty""#);
        let e = err(Topic::SensorEvents, s.as_bytes());
        assert_eq!(e.code, ErrorCode::WrongType);
        assert_eq!(e.field.as_deref(), Some("dst_port"));
    }

    #[test]
    fn missing_field_is_named() {
        let s = EVENT.replace(r#""sensor_id":"fr-ids-1","#, "");
        let e = err(Topic::SensorEvents, s.as_bytes());
        assert_eq!(e.code, ErrorCode::MissingField);
        assert_eq!(e.field.as_deref(), Some("sensor_id"));
    }

    #[test]
    fn unknown_schema_version_is_named() {
        let s = EVENT.replace(
            r#""schema_version":1"#,
            r#""schema_version":7,"new_shape":[1]"#,
        );
        let e = err(Topic::SensorEvents, s.as_bytes());
        assert_eq!(e.code, ErrorCode::UnknownSchemaVersion);
        assert_eq!(e.field.as_deref(), Some("schema_version"));
    }

    #[test]
    fn hostile_strings_are_rejected_with_the_field() {
        let s = EVENT.replace("fr-ids-1", "fr\\u202eids");
        let e = err(Topic::SensorEvents, s.as_bytes());
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::InvalidValue, Some("sensor_id"))
        );
        let s = EVENT.replace(r#""FR""#, r#""<script>""#);
        assert_eq!(
            err(Topic::SensorEvents, s.as_bytes()).field.as_deref(),
            Some("country")
        );
        let s = EVENT.replace("a.evil.example", "a.evil.example'; DROP TABLE x;--");
        assert_eq!(
            err(Topic::SensorEvents, s.as_bytes()).field.as_deref(),
            Some("domain")
        );
    }

    #[test]
    fn unnormalized_observables_are_rejected() {
        let s = EVENT.replace("a.evil.example", "A.Evil.Example");
        let e = err(Topic::SensorEvents, s.as_bytes());
        assert_eq!(e.field.as_deref(), Some("domain"));
        assert!(e.detail.contains("normalized"));
    }

    #[test]
    fn indicator_errors_name_the_field() {
        let ind = r#"{"schema_version":1,"id":"i1","kind":"ipv4","value":"10.0.0.1","owner":"p1","source_kind":"partner","source_id":"p1","tlp":"AMBER","sharing":["FR"],"confidence":170,"created":"2026-01-01T00:00:00Z","modified":"2026-01-01T00:00:00Z","valid_from":"2026-01-01T00:00:00Z"}"#;
        let e = err(Topic::PartnerIndicators, ind.as_bytes());
        assert_eq!(e.field.as_deref(), Some("confidence"));
        let e = err(
            Topic::PartnerIndicators,
            ind.replace("AMBER", "PURPLE").as_bytes(),
        );
        assert_eq!(e.field.as_deref(), Some("tlp"));
        let e = err(
            Topic::PartnerIndicators,
            ind.replace("10.0.0.1", "10.0.0.999").as_bytes(),
        );
        assert_eq!(e.field.as_deref(), Some("value"));
    }

    #[test]
    fn an_event_decoded_in_place_borrows_its_text_and_equals_the_owned_decode() {
        let bytes = EVENT.as_bytes();
        let ev = decode_event_in(bytes).unwrap();
        let record = bytes.as_ptr_range();
        for text in [&ev.event_id, &ev.sensor_id, &ev.country] {
            assert!(
                record.contains(&text.as_str().as_ptr()),
                "{text} is read in place"
            );
        }
        assert_eq!(ev.to_owned_event(), decode_event(bytes).unwrap());
        assert_eq!(ev, decode_event(bytes).unwrap().view());
        // Text written with escapes is unescaped into text of its own: the same event.
        let escaped = EVENT.replace("fr-ids-1", "fr\\u002dids\\u002d1");
        let ev = decode_event_in(escaped.as_bytes()).unwrap();
        assert_eq!(ev.sensor_id.as_str(), "fr-ids-1");
        assert!(
            !escaped
                .as_bytes()
                .as_ptr_range()
                .contains(&ev.sensor_id.as_str().as_ptr())
        );
        assert_eq!(ev.to_owned_event(), decode_event(bytes).unwrap());
    }

    #[test]
    fn outputs_are_not_read() {
        assert_eq!(err(Topic::Alerts, b"{}").code, ErrorCode::UnknownTopic);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            for t in Topic::INPUTS {
                let _ = decode_record(t, &bytes);
            }
        }

        #[test]
        fn decoding_in_place_gives_the_owned_decode_s_event_or_error(
            pos in 0usize..200,
            byte in any::<u8>(),
            cut in 0usize..240,
        ) {
            let mut b = EVENT.as_bytes().to_vec();
            let p = pos % b.len();
            b[p] = byte;
            for bytes in [&b[..], &b[..cut.min(b.len())]] {
                prop_assert_eq!(
                    decode_event_in(bytes).map(|e| e.to_owned_event()),
                    decode_event(bytes)
                );
            }
        }

        #[test]
        fn mutated_records_never_panic(pos in 0usize..200, byte in any::<u8>()) {
            let mut b = EVENT.as_bytes().to_vec();
            let p = pos % b.len();
            b[p] = byte;
            let _ = decode_record(Topic::SensorEvents, &b);
        }
    }
}
