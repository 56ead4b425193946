//! The canonical sensor event: what member-country sensors report, whatever their native format.

use std::borrow::Cow;
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

// `S`: see `SensorEvent`.
/// File hashes carried by an event.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FileHashes")]
pub struct FileHashes<S = String> {
    /// MD5, 32 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<S>,
    /// SHA-1, 40 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha1: Option<S>,
    /// SHA-256, 64 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<S>,
}

impl<S> FileHashes<S> {
    /// True if no hash is set.
    pub fn is_empty(&self) -> bool {
        self.md5.is_none() && self.sha1.is_none() && self.sha256.is_none()
    }
}

/// The details of a purchase ([`EventKind::Purchase`]) reported by a private-sector
/// partner (airline, merchant, payment processor). Carries no card number: the card
/// is named by the partner's token or hash of it.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Purchase {
    /// Token or hash of the card, never the card number (PAN) itself; an identifier.
    pub card_ref: String,
    /// Country that issued the card (ISO 3166-1 alpha-2).
    pub card_country: String,
    /// Country the buyer's IP address geolocates to (ISO 3166-1 alpha-2), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_country: Option<String>,
    /// Departure of the journey bought (airline tickets), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub departure_at: Option<Timestamp>,
    /// Merchant name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant: Option<String>,
    /// Amount in minor units of `currency` (cents for EUR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_minor: Option<u64>,
    /// Currency of the amount (ISO 4217, three upper-case letters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// Shortest and longest all-digit `card_ref` rejected as a card number (PANs have 12 to 19 digits).
const PAN_DIGITS: std::ops::RangeInclusive<usize> = 12..=19;

impl Purchase {
    /// Checks every field; `prefix` is the path of the purchase in its record (`purchase`).
    pub fn validate(&self, prefix: &str) -> Result<(), ValidationError> {
        let field = |name: &str| format!("{prefix}.{name}");
        validate::id(&field("card_ref"), &self.card_ref)?;
        if PAN_DIGITS.contains(&self.card_ref.len())
            && self.card_ref.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ValidationError::new(
                field("card_ref"),
                "looks like a card number (PAN); send the partner's token or hash of the card instead",
            ));
        }
        validate::country(&field("card_country"), &self.card_country)?;
        if let Some(c) = &self.src_country {
            validate::country(&field("src_country"), c)?;
        }
        if let Some(m) = &self.merchant {
            validate::text(&field("merchant"), m)?;
        }
        if let Some(c) = &self.currency
            && !(c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(ValidationError::new(
                field("currency"),
                format!("{c:?} is not an ISO 4217 code such as \"EUR\""),
            ));
        }
        Ok(())
    }
}

/// Text of a record decoded in place ([`SensorEvent<Text>`]): borrowed from the record,
/// or owned when the record wrote it with escapes. Compares, orders, hashes and
/// serializes as the string it holds, so an event is equal, and hashes alike, in either
/// form.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Text<'a>(Cow<'a, str>);

impl Text<'_> {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'a> From<&'a str> for Text<'a> {
    fn from(s: &'a str) -> Self {
        Text(Cow::Borrowed(s))
    }
}

impl AsRef<str> for Text<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::hash::Hash for Text<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As a `String` hashes.
        self.as_str().hash(state);
    }
}

impl Serialize for Text<'_> {
    fn serialize<Z: serde::Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                // A `String`'s words, so a wrong type is reported alike.
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(Visit)
    }
}

// `S` is the type of the event's text: `String`, or `Text` for an event decoded in place
// (`decode::decode_event_in`): ingest's path, which allocates no string for the text it
// reads and gives the event to matching as it is. (Not in the doc comment: that is the
// published JSON Schema's description.)
/// One observation by one sensor (canonical form on `fusion.sensor.events`).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "SensorEvent", bound = "S: JsonSchema + Default")]
pub struct SensorEvent<S = String> {
    /// Schema version of this record; this release reads 1.
    pub schema_version: u32,
    /// Unique id of the event at its sensor.
    pub event_id: S,
    /// The sensor that saw it.
    pub sensor_id: S,
    /// Country of the sensor (ISO 3166-1 alpha-2).
    pub country: S,
    /// When the sensor saw it (event time).
    #[serde(deserialize_with = "crate::timestamp::deserialize")]
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
    pub proto: Option<S>,
    /// Domain name queried or contacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<S>,
    /// URL requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<S>,
    /// Hashes of a file seen.
    #[serde(default, skip_serializing_if = "FileHashes::is_empty")]
    pub file_hashes: FileHashes<S>,
    /// E-mail address seen (sender, recipient or account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<S>,
    /// Wallet address seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet: Option<S>,
    /// Address of the machine the event concerns in the sensor's country (the victim; personal data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub victim_ip: Option<IpAddr>,
    /// Signature or rule that fired, for IDS alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<S>,
    /// Purchase details, for events of kind [`EventKind::Purchase`] only. Boxed: most
    /// events are not purchases and every event stays small in the dataflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase: Option<Box<Purchase>>,
}

/// The text of an optional field.
fn text_of<S: AsRef<str>>(v: &Option<S>) -> Option<&str> {
    v.as_ref().map(AsRef::as_ref)
}

impl<S: AsRef<str>> SensorEvent<S> {
    /// Checks every field; observable fields must be in normalized form.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate::schema_version(self.schema_version)?;
        validate::id("event_id", self.event_id.as_ref())?;
        validate::id("sensor_id", self.sensor_id.as_ref())?;
        validate::country("country", self.country.as_ref())?;
        if let Some(p) = text_of(&self.proto) {
            validate::id("proto", p)?;
        }
        let checks = [
            ("domain", IndicatorKind::Domain, text_of(&self.domain)),
            ("url", IndicatorKind::Url, text_of(&self.url)),
            ("email", IndicatorKind::Email, text_of(&self.email)),
            ("wallet", IndicatorKind::Wallet, text_of(&self.wallet)),
            (
                "file_hashes.md5",
                IndicatorKind::Md5,
                text_of(&self.file_hashes.md5),
            ),
            (
                "file_hashes.sha1",
                IndicatorKind::Sha1,
                text_of(&self.file_hashes.sha1),
            ),
            (
                "file_hashes.sha256",
                IndicatorKind::Sha256,
                text_of(&self.file_hashes.sha256),
            ),
        ];
        for (field, kind, value) in checks {
            if let Some(v) = value {
                match kind.normalized(v) {
                    Ok(n) if *n == *v => {}
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
        if let Some(s) = text_of(&self.signature) {
            validate::text("signature", s)?;
        }
        if let Some(p) = &self.purchase {
            if self.kind != EventKind::Purchase {
                return Err(ValidationError::new(
                    "purchase",
                    "only events of kind `purchase` carry purchase details",
                ));
            }
            p.validate("purchase")?;
        }
        Ok(())
    }

    /// The same event with each text made by `f`.
    pub fn map_text<'s, T>(&'s self, f: impl Fn(&'s S) -> T) -> SensorEvent<T> {
        let opt = |v: &'s Option<S>| v.as_ref().map(&f);
        SensorEvent {
            schema_version: self.schema_version,
            event_id: f(&self.event_id),
            sensor_id: f(&self.sensor_id),
            country: f(&self.country),
            observed_at: self.observed_at,
            kind: self.kind,
            src_ip: self.src_ip,
            src_port: self.src_port,
            dst_ip: self.dst_ip,
            dst_port: self.dst_port,
            proto: opt(&self.proto),
            domain: opt(&self.domain),
            url: opt(&self.url),
            file_hashes: FileHashes {
                md5: opt(&self.file_hashes.md5),
                sha1: opt(&self.file_hashes.sha1),
                sha256: opt(&self.file_hashes.sha256),
            },
            email: opt(&self.email),
            wallet: opt(&self.wallet),
            victim_ip: self.victim_ip,
            signature: opt(&self.signature),
            purchase: self.purchase.clone(),
        }
    }

    /// The event with its text borrowed from it: the form ingest hands on.
    pub fn view(&self) -> SensorEvent<Text<'_>> {
        self.map_text(|s| Text::from(s.as_ref()))
    }

    /// The event owning its text.
    pub fn to_owned_event(&self) -> SensorEvent {
        self.map_text(|s| s.as_ref().to_owned())
    }
}

impl SensorEvent {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn purchase_event() -> SensorEvent {
        serde_json::from_str(
            r#"{"schema_version":1,"event_id":"p1","sensor_id":"airline-x","country":"FR",
                "observed_at":"2026-05-01T10:00:00Z","kind":"purchase","src_ip":"203.0.113.9",
                "purchase":{"card_ref":"tok-8f3a","card_country":"FR","src_country":"NG",
                "departure_at":"2026-05-01T12:00:00Z","merchant":"Air Example",
                "amount_minor":125000,"currency":"EUR"}}"#,
        )
        .unwrap()
    }

    #[test]
    fn a_purchase_validates_and_round_trips() {
        let ev = purchase_event();
        ev.validate().unwrap();
        let p = ev.purchase.as_ref().unwrap();
        assert_eq!(p.src_country.as_deref(), Some("NG"));
        let back: SensorEvent = serde_json::from_str(&serde_json::to_string(&ev).unwrap()).unwrap();
        assert_eq!(back, ev);
    }

    #[test]
    fn events_without_purchase_serialize_as_before() {
        let mut ev = purchase_event();
        ev.purchase = None;
        assert!(!serde_json::to_string(&ev).unwrap().contains("purchase\":"));
    }

    #[test]
    fn bad_purchases_are_rejected_naming_the_field() {
        let field = |f: &dyn Fn(&mut SensorEvent)| {
            let mut ev = purchase_event();
            f(&mut ev);
            ev.validate().unwrap_err().field
        };
        assert_eq!(
            field(&|ev| ev.purchase.as_mut().unwrap().card_ref = "4111111111111111".into()),
            "purchase.card_ref",
            "a card number is refused"
        );
        assert_eq!(
            field(&|ev| ev.purchase.as_mut().unwrap().card_ref = String::new()),
            "purchase.card_ref"
        );
        assert_eq!(
            field(&|ev| ev.purchase.as_mut().unwrap().card_country = "fr".into()),
            "purchase.card_country"
        );
        assert_eq!(
            field(&|ev| ev.purchase.as_mut().unwrap().src_country = Some("NGA".into())),
            "purchase.src_country"
        );
        assert_eq!(
            field(&|ev| ev.purchase.as_mut().unwrap().currency = Some("eur".into())),
            "purchase.currency"
        );
        assert_eq!(field(&|ev| ev.kind = EventKind::Dns), "purchase");
        // A short all-digit token is not a card number.
        let mut ev = purchase_event();
        ev.purchase.as_mut().unwrap().card_ref = "12345".into();
        ev.validate().unwrap();
    }
}
