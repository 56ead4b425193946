//! Builders shared by this crate's unit tests.

use schemas::Indicator;

/// A partner indicator on 203.0.113.7, modified at `modified_ms`, valid until
/// `valid_until_ms` if given.
pub(crate) fn indicator(id: &str, modified_ms: i64, valid_until_ms: Option<i64>) -> Indicator {
    let ts = |ms| jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    Indicator {
        schema_version: schemas::SCHEMA_VERSION,
        id: id.into(),
        kind: schemas::IndicatorKind::Ipv4,
        value: "203.0.113.7".into(),
        owner: "partner-a".into(),
        source_kind: schemas::SourceKind::Partner,
        source_id: "feed-a".into(),
        tlp: schemas::Tlp::Green,
        sharing: Vec::new(),
        confidence: 80,
        created: ts(0),
        modified: ts(modified_ms),
        valid_from: ts(0),
        valid_until: valid_until_ms.map(ts),
        revoked: false,
        labels: Vec::new(),
    }
}
