//! Items of open-source intelligence feeds.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::indicator::{Indicator, IndicatorKind, SourceKind};
use crate::marking::Tlp;
use crate::validate::{self, ValidationError};

/// One entry of an open-source feed (on `fusion.osint.items`).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct OsintItem {
    /// Schema version of this record; this release reads 1.
    pub schema_version: u32,
    /// The feed it comes from.
    pub feed_id: String,
    /// Id of the entry within the feed.
    pub item_id: String,
    /// Kind of the value; guessed from the value when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<IndicatorKind>,
    /// The value (address, domain, URL, hash…).
    pub value: String,
    /// When the feed published it.
    pub published: Timestamp,
    /// Since when the feed says the value has been malicious (default: `published`);
    /// earlier sightings from then on match retroactively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<Timestamp>,
    /// How long the feed vouches for it, in seconds; none means no expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    /// The feed's confidence, 0 to 100 (default 50).
    #[serde(default = "default_confidence")]
    pub confidence: u8,
    /// Tags given by the feed.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The feed withdrew the entry.
    #[serde(default)]
    pub withdrawn: bool,
}

fn default_confidence() -> u8 {
    50
}

impl OsintItem {
    /// Checks the item and turns it into the indicator it stands for (TLP CLEAR, owner = the feed).
    pub fn to_indicator(&self) -> Result<Indicator, ValidationError> {
        validate::schema_version(self.schema_version)?;
        validate::id("feed_id", &self.feed_id)?;
        validate::id("item_id", &self.item_id)?;
        let kind = match self.kind {
            Some(k) => k,
            None => IndicatorKind::detect(&self.value).ok_or_else(|| {
                ValidationError::new(
                    "value",
                    format!("{:?} is not a recognisable indicator value", self.value),
                )
            })?,
        };
        let value = kind
            .normalize(&self.value)
            .map_err(|r| ValidationError::new("value", r))?;
        let valid_until = match self.ttl_secs {
            Some(ttl) => {
                let span = jiff::SignedDuration::from_secs(
                    i64::try_from(ttl)
                        .unwrap_or(i64::MAX)
                        .min(100 * 365 * 86_400),
                );
                Some(
                    self.published
                        .checked_add(span)
                        .map_err(|e| ValidationError::new("ttl_secs", e))?,
                )
            }
            None => None,
        };
        let indicator = Indicator {
            schema_version: crate::SCHEMA_VERSION,
            id: format!("osint:{}:{}", self.feed_id, self.item_id),
            kind,
            value,
            owner: self.feed_id.clone(),
            source_kind: SourceKind::Osint,
            source_id: self.feed_id.clone(),
            tlp: Tlp::Clear,
            sharing: Vec::new(),
            confidence: self.confidence,
            created: self.published,
            modified: self.published,
            valid_from: self
                .valid_from
                .unwrap_or(self.published)
                .min(self.published),
            valid_until,
            revoked: self.withdrawn,
            labels: self.tags.clone(),
        };
        indicator.validate().map_err(|e| {
            // Field names of the indicator map back onto the item's.
            let field = match e.field.as_str() {
                "labels" => "tags".to_string(),
                f if f.starts_with("labels[") => f.replacen("labels", "tags", 1),
                f => f.to_string(),
            };
            ValidationError::new(field, e.reason)
        })?;
        Ok(indicator)
    }
}
