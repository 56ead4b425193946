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
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"._:@/+-".contains(&b);
    if value.bytes().all(allowed) {
        return Ok(());
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

/// The officially assigned ISO 3166-1 alpha-2 codes (249), sorted. User-assigned codes
/// (AA, QM–QZ, XA–XZ, ZZ) and reserved ones are not countries.
const ISO_3166_1_ALPHA2: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ \
BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ \
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ \
EC EE EG EH ER ES ET FI FJ FK FM FO FR \
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU \
ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ \
LA LB LC LI LK LR LS LT LU LV LY \
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ \
NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA \
RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ \
TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ \
VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// An officially assigned ISO 3166-1 alpha-2 code: [`country`], and not a user-assigned
/// or unassigned code such as `ZZ` or `XX`.
pub fn assigned_country(field: &str, value: &str) -> Result<(), ValidationError> {
    country(field, value)?;
    if ISO_3166_1_ALPHA2.split(' ').any(|c| c == value) {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!("{value:?} is not an assigned ISO 3166-1 alpha-2 country code"),
        ))
    }
}

#[cfg(test)]
mod assigned_country_tests {
    #[test]
    fn the_list_is_the_249_assigned_codes_sorted() {
        let codes: Vec<&str> = super::ISO_3166_1_ALPHA2.split(' ').collect();
        assert_eq!(codes.len(), 249);
        assert!(codes.windows(2).all(|w| w[0] < w[1]));
        assert!(super::assigned_country("f", "FR").is_ok());
        for bad in ["ZZ", "XX", "AA", "QM", "", "fr", "FRA"] {
            assert!(super::assigned_country("f", bad).is_err(), "{bad}");
        }
    }
}
