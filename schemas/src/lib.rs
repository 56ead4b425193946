//! Message types of every Fusion topic, their validation, and decoders for the
//! native formats partners and sensors really send.
//!
//! Every type here is what travels on a topic (`fusion.sensor.events`,
//! `fusion.partner.indicators`, `fusion.osint.items`, `fusion.desk.actions`,
//! `fusion.alerts`, `fusion.deadletter`). Decoding is strict: a record either
//! becomes a valid value or a [`DecodeError`] that names the field and a bounded
//! [`ErrorCode`], which ingest turns into a dead-letter record.
//!
//! Native formats: [`stix`] (STIX 2.1 bundles), [`eve`] (Suricata EVE JSON) and
//! [`feedlist`] (plain lists and CSV).

pub mod action;
pub mod alert;
pub mod deadletter;
pub mod decode;
pub mod desk;
pub mod eve;
pub mod event;
pub mod feedlist;
pub mod indicator;
pub mod input;
pub mod json_schema;
pub mod marking;
pub mod osint;
pub mod routing;
pub mod sharing;
pub mod stix;
pub mod timestamp;
pub mod topic;
pub mod validate;

pub use action::{ActionKind, DeskAction};
pub use alert::{
    Alert, AlertChange, ChangeKind, Contributor, ContributorKind, CountryVictims, HourlySightings,
    IndicatorRef, Provenance, Severity,
};
pub use deadletter::DeadLetter;
pub use decode::{DecodeError, ErrorCode, decode_event, decode_event_in, decode_record};
pub use event::{EventKind, FileHashes, Purchase, SensorEvent, Text};
pub use indicator::{Indicator, IndicatorKind, SourceKind};
pub use input::{Feed, Input};
pub use marking::{Marking, Tlp};
pub use osint::OsintItem;
pub use topic::Topic;
pub use validate::ValidationError;

/// The schema version every record of this release carries in `schema_version`.
pub const SCHEMA_VERSION: u32 = 1;

/// A point in time, serialized as RFC 3339 in UTC.
pub type Timestamp = jiff::Timestamp;
