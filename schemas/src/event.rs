//! The canonical sensor event: what member-country sensors report, whatever their native format.

use std::net::IpAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::indicator::IndicatorKind;
use crate::validate::{self, ValidationError};

/// What the sensor saw.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An IDS signature fired.
    IdsAlert,
    /// A DNS query or answer.
    Dns,
    /// An HTTP request.
    Http,
    /// A TLS handshake.
    Tls,
    /// A flow record.
    Flow,
    /// A darknet or telescope hit (unsolicited traffic to unused space).
    Darknet,
    /// A connection to a sinkholed C2 (the source is an infected machine).
    Sinkhole,
    /// A mail seen by a mail sensor.
    Email,
    /// A payment or purchase reported by a private-sector partner.
    Purchase,
}

/// File hashes carried by an event.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct FileHashes {
    /// MD5, 32 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    /// SHA-1, 40 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha1: Option<String>,
    /// SHA-256, 64 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl FileHashes {
    /// True if no hash is set.
    pub fn is_empty(&self) -> bool {
        self.md5.is_none() && self.sha1.is_none() && self.sha256.is_none()
    }
}

/// One observation by one sensor (canonical form on `fusion.sensor.events`).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct SensorEvent {
    /// Schema version of this record; this release reads 1.
    pub schema_version: u32,
    /// Unique id of the event at its sensor.
    pub event_id: String,
    /// The sensor that saw it.
    pub sensor_id: String,
    /// Country of the sensor (ISO 3166-1 alpha-2).
    pub country: String,
    /// When the sensor saw it (event time).
    pub observed_at: Timestamp,
    /// What was seen.
    pub kind: EventKind,
    /// Source address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_ip: Option<IpAddr>,
    /// Source port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    /// Destination address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_ip: Option<IpAddr>,
    /// Destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    /// Transport protocol (`TCP`, `UDP`, `ICMP`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<String>,
    /// Domain name queried or contacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// URL requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Hashes of a file seen.
    #[serde(default, skip_serializing_if = "FileHashes::is_empty")]
    pub file_hashes: FileHashes,
    /// E-mail address seen (sender, recipient or account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Wallet address seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet: Option<String>,
    /// Address of the machine the event concerns in the sensor's country (the victim; personal data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub victim_ip: Option<IpAddr>,
    /// Signature or rule that fired, for IDS alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl SensorEvent {
    /// Checks every field; observable fields must be in normalized form.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate::schema_version(self.schema_version)?;
        validate::id("event_id", &self.event_id)?;
        validate::id("sensor_id", &self.sensor_id)?;
        validate::country("country", &self.country)?;
        if let Some(p) = &self.proto {
            validate::id("proto", p)?;
        }
        let checks = [
            ("domain", IndicatorKind::Domain, &self.domain),
            ("url", IndicatorKind::Url, &self.url),
            ("email", IndicatorKind::Email, &self.email),
            ("wallet", IndicatorKind::Wallet, &self.wallet),
            ("file_hashes.md5", IndicatorKind::Md5, &self.file_hashes.md5),
            (
                "file_hashes.sha1",
                IndicatorKind::Sha1,
                &self.file_hashes.sha1,
            ),
            (
                "file_hashes.sha256",
                IndicatorKind::Sha256,
                &self.file_hashes.sha256,
            ),
        ];
        for (field, kind, value) in checks {
            if let Some(v) = value {
                match kind.normalize(v) {
                    Ok(n) if &n == v => {}
                    Ok(n) => {
                        return Err(ValidationError::new(
                            field,
                            format!("is not normalized; expected {n:?}"),
                        ));
                    }
                    Err(reason) => return Err(ValidationError::new(field, reason)),
                }
            }
        }
        if let Some(s) = &self.signature {
            validate::text("signature", s)?;
        }
        Ok(())
    }

    /// Normalizes observable fields in place (lower-case domains, canonical URLs, hashes);
    /// decoders of native formats call this before [`SensorEvent::validate`].
    pub fn normalize(&mut self) -> Result<(), ValidationError> {
        fn norm(
            field: &str,
            kind: IndicatorKind,
            v: &mut Option<String>,
        ) -> Result<(), ValidationError> {
            if let Some(s) = v {
                *s = kind
                    .normalize(s)
                    .map_err(|r| ValidationError::new(field, r))?;
            }
            Ok(())
        }
        norm("domain", IndicatorKind::Domain, &mut self.domain)?;
        norm("url", IndicatorKind::Url, &mut self.url)?;
        norm("email", IndicatorKind::Email, &mut self.email)?;
        norm("wallet", IndicatorKind::Wallet, &mut self.wallet)?;
        norm(
            "file_hashes.md5",
            IndicatorKind::Md5,
            &mut self.file_hashes.md5,
        )?;
        norm(
            "file_hashes.sha1",
            IndicatorKind::Sha1,
            &mut self.file_hashes.sha1,
        )?;
        norm(
            "file_hashes.sha256",
            IndicatorKind::Sha256,
            &mut self.file_hashes.sha256,
        )?;
        Ok(())
    }
}
