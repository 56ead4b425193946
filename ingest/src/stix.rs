//! Raw STIX 2.1 bundles on the indicator topic.
//!
//! A partner may publish its bundles as they are instead of canonical indicators. The
//! record says so, and names the partner, in its headers (the bundle itself cannot: the
//! owner, its default TLP and its sharing list are agreed outside STIX):
//!
//! | header               | value                                                   |
//! |----------------------|---------------------------------------------------------|
//! | `content-type`       | `application/stix+json;version=2.1`                     |
//! | `fusion-owner`       | the organisation owning the intelligence (required)     |
//! | `fusion-default-tlp` | TLP of indicators without a readable marking (`AMBER`)  |
//! | `fusion-sharing`     | the owner's sharing list, comma-separated (may be empty) |
//!
//! Each usable indicator of the bundle enters the dataflow; each indicator object Fusion
//! cannot use (an unsupported pattern, a bad value) becomes a dead letter of its own, and
//! the rest of the bundle still counts. Key such records by bundle id: the topic is
//! compacted, so a bundle published again replaces the earlier copy.

use schemas::decode::{DecodeError, ErrorCode};
use schemas::stix::{StixContext, StixDecoded, decode_bundle};
use schemas::{Tlp, Topic};

use crate::record::RawRecord;

/// The header naming the payload's format.
pub const CONTENT_TYPE: &str = "content-type";
/// The content type of a STIX 2.1 bundle (RFC-style media type with its version).
pub const STIX_CONTENT_TYPE: &str = "application/stix+json;version=2.1";
/// The header naming the organisation that owns the bundle's intelligence.
pub const OWNER: &str = "fusion-owner";
/// The header giving the TLP of indicators without a readable marking.
pub const DEFAULT_TLP: &str = "fusion-default-tlp";
/// The header giving the owner's sharing list, comma-separated.
pub const SHARING: &str = "fusion-sharing";

/// True when `rec` says it carries a STIX bundle (any `application/stix+json` version;
/// the decoder itself refuses other spec versions).
pub fn is_stix(rec: &RawRecord) -> bool {
    rec.topic == Topic::PartnerIndicators
        && rec.header(CONTENT_TYPE).is_some_and(|v| {
            std::str::from_utf8(v).is_ok_and(|v| {
                v.trim()
                    .to_ascii_lowercase()
                    .starts_with("application/stix+json")
            })
        })
}

/// The headers announcing a bundle owned by `ctx.owner`.
pub fn headers(ctx: &StixContext) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (CONTENT_TYPE, STIX_CONTENT_TYPE.as_bytes().to_vec()),
        (OWNER, ctx.owner.as_bytes().to_vec()),
        (DEFAULT_TLP, ctx.default_tlp.as_str().as_bytes().to_vec()),
        (SHARING, ctx.sharing.join(",").into_bytes()),
    ]
}

fn header_text<'a>(rec: &'a RawRecord, name: &str) -> Result<Option<&'a str>, DecodeError> {
    rec.header(name)
        .map(|v| {
            std::str::from_utf8(v).map(str::trim).map_err(|_| {
                DecodeError::new(
                    ErrorCode::InvalidUtf8,
                    Some(format!("header {name}")),
                    format!("the {name} header is not UTF-8"),
                )
            })
        })
        .transpose()
}

/// The publishing partner, from the record's headers.
pub fn context(rec: &RawRecord) -> Result<StixContext, DecodeError> {
    let owner = header_text(rec, OWNER)?
        .filter(|o| !o.is_empty())
        .ok_or_else(|| {
            DecodeError::new(
                ErrorCode::MissingField,
                Some(format!("header {OWNER}")),
                format!("a STIX bundle needs the {OWNER} header naming the owning organisation"),
            )
        })?;
    let default_tlp = match header_text(rec, DEFAULT_TLP)? {
        None | Some("") => Tlp::Amber,
        Some(t) => Tlp::parse(t).ok_or_else(|| {
            DecodeError::new(
                ErrorCode::InvalidValue,
                Some(format!("header {DEFAULT_TLP}")),
                format!("{t:?} is not a TLP level (CLEAR, GREEN, AMBER, AMBER+STRICT, RED)"),
            )
        })?,
    };
    let sharing = header_text(rec, SHARING)?
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(StixContext {
        owner: owner.to_string(),
        source_id: owner.to_string(),
        default_tlp,
        sharing,
    })
}

/// Decodes the bundle in `rec` with the partner named by its headers.
pub fn decode(rec: &RawRecord) -> Result<StixDecoded, DecodeError> {
    decode_bundle(&rec.payload, &context(rec)?)
}

/// A dead-letter reason for one indicator object of a bundle that could not be used.
pub fn skipped_error(skipped: &schemas::stix::Skipped) -> DecodeError {
    DecodeError::new(
        skipped.code,
        skipped.field.clone(),
        format!("STIX object {}: {}", skipped.object_id, skipped.reason),
    )
}

/// If a record that failed to decode as a canonical indicator is in fact a STIX bundle,
/// the error says how to publish it.
pub fn explain_unmarked_bundle(rec: &RawRecord, error: DecodeError) -> DecodeError {
    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<&'a str>,
    }
    if rec.topic != Topic::PartnerIndicators {
        return error;
    }
    match serde_json::from_slice::<Probe<'_>>(&rec.payload) {
        Ok(Probe {
            kind: Some("bundle"),
        }) => DecodeError::new(
            ErrorCode::UnsupportedFormat,
            Some(format!("header {CONTENT_TYPE}")),
            format!(
                "a STIX bundle without the header {CONTENT_TYPE}: {STIX_CONTENT_TYPE}; publish it with that header and {OWNER} (`fusion publish --format stix --raw`), or as canonical indicators"
            ),
        ),
        _ => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(payload: &[u8], headers: &[(&str, &str)]) -> RawRecord {
        RawRecord {
            topic: Topic::PartnerIndicators,
            partition: 0,
            offset: 0,
            timestamp_ms: 1,
            key: None,
            payload: payload.to_vec(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
            future_timestamp_ms: None,
        }
    }

    #[test]
    fn the_headers_name_the_partner_and_round_trip() {
        let ctx = StixContext {
            owner: "acme-cti".into(),
            source_id: "acme-cti".into(),
            default_tlp: Tlp::AmberStrict,
            sharing: vec!["FR".into(), "DE".into()],
        };
        let hs = headers(&ctx);
        let rec = RawRecord {
            headers: hs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            ..record(b"{}", &[])
        };
        assert!(is_stix(&rec));
        assert_eq!(context(&rec).unwrap(), ctx);
    }

    #[test]
    fn a_bundle_without_owner_or_with_a_bad_tlp_is_refused_with_the_header_named() {
        let rec = record(b"{}", &[(CONTENT_TYPE, STIX_CONTENT_TYPE)]);
        let e = context(&rec).unwrap_err();
        assert_eq!(e.code, ErrorCode::MissingField);
        assert_eq!(e.field.as_deref(), Some("header fusion-owner"));
        let rec = record(
            b"{}",
            &[
                (CONTENT_TYPE, STIX_CONTENT_TYPE),
                (OWNER, "p"),
                (DEFAULT_TLP, "PINK"),
            ],
        );
        assert_eq!(context(&rec).unwrap_err().code, ErrorCode::InvalidValue);
        let mut rec = record(b"{}", &[(CONTENT_TYPE, STIX_CONTENT_TYPE)]);
        rec.headers.push((OWNER.into(), vec![0xff, 0xfe]));
        assert_eq!(context(&rec).unwrap_err().code, ErrorCode::InvalidUtf8);
    }

    #[test]
    fn only_the_indicator_topic_reads_bundles() {
        let mut rec = record(b"{}", &[("Content-Type", "application/stix+json")]);
        assert!(is_stix(&rec));
        rec.topic = Topic::SensorEvents;
        assert!(!is_stix(&rec));
        assert!(!is_stix(&record(
            b"{}",
            &[(CONTENT_TYPE, "application/json")]
        )));
    }

    #[test]
    fn an_unmarked_bundle_is_explained() {
        let original = DecodeError::new(ErrorCode::UnknownField, None, "unknown field `type`");
        let rec = record(br#"{"type":"bundle","id":"bundle--1","objects":[]}"#, &[]);
        let e = explain_unmarked_bundle(&rec, original.clone());
        assert_eq!(e.code, ErrorCode::UnsupportedFormat);
        assert!(e.detail.contains(STIX_CONTENT_TYPE), "{e}");
        let rec = record(br#"{"kind":"domain"}"#, &[]);
        assert_eq!(explain_unmarked_bundle(&rec, original.clone()), original);
    }
}
