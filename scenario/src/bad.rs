//! Deliberately bad payloads: each is a valid record of its topic, damaged in one way
//! Fusion must reject (and dead-letter) without stopping.
//!
//! Bad payloads never contain a newline byte, so they stay one line in JSON-lines files,
//! and they are never larger than the valid record they were made from.

use schemas::Topic;
use serde::Serialize;
use serde_json::{Map, Value};

/// How a bad payload is damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BadKind {
    /// The JSON text is cut off in the middle.
    TruncatedJson,
    /// A field has the wrong JSON type (a string where a number belongs, or the reverse).
    WrongType,
    /// `schema_version` is one this release does not read.
    UnknownSchemaVersion,
    /// A byte sequence that is not UTF-8 inside a string.
    InvalidUtf8,
    /// An id carrying a bidi override or a control character.
    HostileString,
    /// A value that parses but fails validation (an IPv4 address `999.1.1.1`, an empty id).
    InvalidValue,
    /// A field the schema does not have.
    UnknownField,
}

impl BadKind {
    /// Every kind, in the order the generator rotates through them.
    pub const ALL: [BadKind; 7] = [
        BadKind::TruncatedJson,
        BadKind::WrongType,
        BadKind::UnknownSchemaVersion,
        BadKind::InvalidUtf8,
        BadKind::HostileString,
        BadKind::InvalidValue,
        BadKind::UnknownField,
    ];

    /// The name used in the truth file.
    pub fn as_str(self) -> &'static str {
        match self {
            BadKind::TruncatedJson => "truncated_json",
            BadKind::WrongType => "wrong_type",
            BadKind::UnknownSchemaVersion => "unknown_schema_version",
            BadKind::InvalidUtf8 => "invalid_utf8",
            BadKind::HostileString => "hostile_string",
            BadKind::InvalidValue => "invalid_value",
            BadKind::UnknownField => "unknown_field",
        }
    }
}

/// Damages `valid`, a valid record of `topic`, in the way `kind` says; `variant` varies
/// the details (which hostile character).
pub(crate) fn damage<T: Serialize>(
    kind: BadKind,
    topic: Topic,
    valid: &T,
    variant: u64,
) -> Vec<u8> {
    let bytes = crate::generator::to_json(valid);
    match kind {
        BadKind::TruncatedJson => {
            // Valid records are ASCII, so any cut is at a character boundary.
            let mut b = bytes;
            b.truncate(b.len() / 2);
            b
        }
        BadKind::InvalidUtf8 => {
            // Records start `{"schema_version":1,"<id field>":"…`: replace the first
            // character of the first string value.
            let mut b = bytes;
            match b.windows(3).position(|w| w == b"\":\"") {
                Some(p) if p + 3 < b.len() => b[p + 3] = 0xff,
                _ => b.insert(0, 0xff),
            }
            b
        }
        _ => {
            let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(&bytes) else {
                // Not reachable for the record types used; still bad, as a truncation.
                return bytes.get(..bytes.len() / 2).unwrap_or_default().to_vec();
            };
            edit(kind, topic, &mut map, variant);
            crate::generator::to_json(&Value::Object(map))
        }
    }
}

fn edit(kind: BadKind, topic: Topic, map: &mut Map<String, Value>, variant: u64) {
    let id_field = match topic {
        Topic::SensorEvents => "sensor_id",
        Topic::PartnerIndicators => "id",
        Topic::OsintItems => "item_id",
        _ => "action_id",
    };
    match kind {
        BadKind::WrongType => {
            let (field, value) = match topic {
                Topic::SensorEvents => ("src_port", Value::from("eighty")),
                Topic::PartnerIndicators | Topic::OsintItems => ("confidence", Value::from("high")),
                _ => ("officer_id", Value::from(42)),
            };
            map.insert(field.into(), value);
        }
        BadKind::UnknownSchemaVersion => {
            map.insert("schema_version".into(), Value::from(2 + variant % 3));
        }
        BadKind::HostileString => {
            let orig = map.get(id_field).and_then(Value::as_str).unwrap_or("x");
            // A right-to-left override that makes `…exe.txt` display as `…txt.exe`, or a bell.
            let hostile = if variant.is_multiple_of(2) {
                format!("{orig}\u{202e}txt.exe")
            } else {
                format!("{orig}\u{7}")
            };
            map.insert(id_field.into(), Value::from(hostile));
        }
        BadKind::InvalidValue => match topic {
            Topic::SensorEvents => {
                map.insert("src_ip".into(), Value::from("999.1.1.1"));
            }
            Topic::PartnerIndicators | Topic::OsintItems => {
                map.insert("kind".into(), Value::from("ipv4"));
                map.insert("value".into(), Value::from("999.1.1.1"));
            }
            _ => {
                map.insert("alert_id".into(), Value::from(""));
            }
        },
        BadKind::UnknownField => {
            map.insert(
                "x_debug_note".into(),
                Value::from("added by a broken exporter"),
            );
        }
        BadKind::TruncatedJson | BadKind::InvalidUtf8 => {}
    }
}
