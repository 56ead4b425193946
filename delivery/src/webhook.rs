//! Standard Webhooks v1: ids, signing and verification.
//!
//! A message is signed as `v1,` + base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}"))
//! where the secret is the base64 after the `whsec_` prefix. A signature header
//! may carry several space-separated signatures (key rotation); one valid `v1`
//! signature is enough. The timestamp must be within the tolerance of the
//! receiver's clock, which stops replays of old captures.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Header carrying the message id (stable across retries; receivers de-duplicate on it).
pub const HEADER_ID: &str = "webhook-id";
/// Header carrying the attempt's Unix time in seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Header carrying the signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// Header naming the exercise drill a message belongs to (absent in live operations).
pub const HEADER_DRILL: &str = "fusion-drill";
/// Default tolerance between the message timestamp and the receiver's clock.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// Why a secret or a signed message was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    /// The secret is not `whsec_` + base64.
    #[error("the signing secret must be \"whsec_\" followed by base64 ({0})")]
    BadSecret(String),
    /// A header is absent.
    #[error("the {0} header is missing")]
    MissingHeader(&'static str),
    /// The timestamp is not an integer.
    #[error("the webhook-timestamp header is not a Unix time in seconds")]
    BadTimestamp,
    /// The timestamp is too far from now.
    #[error(
        "the message timestamp is {skew_secs} s from now, beyond the {tolerance_secs} s tolerance"
    )]
    TimestampOutsideTolerance {
        /// Message time minus now.
        skew_secs: i64,
        /// Allowed distance.
        tolerance_secs: i64,
    },
    /// No signature matches.
    #[error("no v1 signature matches the body (tampered body or wrong secret)")]
    NoMatchingSignature,
}

/// A webhook signing secret (`whsec_` + base64 of the key bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    /// Parses `whsec_...` (surrounding whitespace, e.g. a file's newline, and a leading
    /// byte order mark, as some editors write, are ignored).
    pub fn parse(text: &str) -> Result<Self, WebhookError> {
        let text = text.trim_start_matches('\u{feff}').trim();
        let b64 = text
            .strip_prefix("whsec_")
            .ok_or_else(|| WebhookError::BadSecret("no whsec_ prefix".to_string()))?;
        // The decoder's error names the offending byte and offset: secret material, so
        // the message says only what is wrong.
        let key = STANDARD.decode(b64).map_err(|_| {
            WebhookError::BadSecret("the text after whsec_ is not base64".to_string())
        })?;
        if key.is_empty() {
            return Err(WebhookError::BadSecret("empty key".to_string()));
        }
        Ok(Self(key))
    }

    /// A secret from raw key bytes.
    pub fn from_bytes(key: impl Into<Vec<u8>>) -> Self {
        Self(key.into())
    }

    /// The `whsec_` text form.
    pub fn to_whsec(&self) -> String {
        format!("whsec_{}", STANDARD.encode(&self.0))
    }

    /// The `v1,<base64>` signature of a message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", STANDARD.encode(self.mac(id, timestamp, body)))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }

    /// Checks a message's signature header against this secret, ignoring time.
    pub fn verify_signature(
        &self,
        id: &str,
        timestamp: i64,
        body: &[u8],
        signature_header: &str,
    ) -> Result<(), WebhookError> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        for sig in signature_header.split_whitespace() {
            let Some(b64) = sig.strip_prefix("v1,") else {
                continue;
            };
            let Ok(given) = STANDARD.decode(b64) else {
                continue;
            };
            // verify_slice compares in constant time.
            if mac.clone().verify_slice(&given).is_ok() {
                return Ok(());
            }
        }
        Err(WebhookError::NoMatchingSignature)
    }

    /// Verifies a received message: headers present, timestamp within `tolerance_secs` of `now_secs`, signature valid.
    pub fn verify(
        &self,
        id: Option<&str>,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now_secs: i64,
        tolerance_secs: i64,
    ) -> Result<(), WebhookError> {
        let id = id.ok_or(WebhookError::MissingHeader(HEADER_ID))?;
        let ts = timestamp.ok_or(WebhookError::MissingHeader(HEADER_TIMESTAMP))?;
        let sig = signature.ok_or(WebhookError::MissingHeader(HEADER_SIGNATURE))?;
        let ts: i64 = ts.trim().parse().map_err(|_| WebhookError::BadTimestamp)?;
        // abs_diff cannot overflow: `skew.abs()` of i64::MIN wrapped to a negative number
        // in release builds and let any timestamp that far back through.
        if ts.abs_diff(now_secs) > tolerance_secs.unsigned_abs() {
            return Err(WebhookError::TimestampOutsideTolerance {
                skew_secs: ts.saturating_sub(now_secs),
                tolerance_secs,
            });
        }
        self.verify_signature(id, ts, body, sig)
    }
}

/// What a webhook message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// An alert version (opened or updated).
    Alert,
    /// A retraction of an alert the recipient got earlier.
    Retraction,
    /// Sighting feedback to a partner.
    Feedback,
}

/// The webhook id of a message: a content hash of (alert id, alert version, recipient, kind).
///
/// Stable across retries and restarts, so receivers de-duplicate on it.
pub fn webhook_id(alert_id: &str, version: u64, recipient: &str, kind: MessageKind) -> String {
    let mut h = Sha256::new();
    for part in [
        alert_id.as_bytes(),
        &version.to_be_bytes(),
        recipient.as_bytes(),
        match kind {
            MessageKind::Alert => b"alert",
            MessageKind::Retraction => b"retra",
            MessageKind::Feedback => b"feedb",
        },
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    let prefix = match kind {
        MessageKind::Alert => "alrt",
        MessageKind::Retraction => "rtrc",
        MessageKind::Feedback => "fdbk",
    };
    format!("{prefix}_{}", hex::encode(&h.finalize()[..16]))
}
