//! STIX 2.1 bundles, as partners publish them, decoded into canonical [`Indicator`]s.
//!
//! Semantics:
//! - The input must be one JSON object with `"type": "bundle"`. Its `objects` list is
//!   optional (STIX 2.1 §8): a bundle without it, or without any `indicator` object, decodes
//!   to nothing and callers report "no indicator". Anything else that is not a bundle, or a
//!   bundle whose `objects` is not a list of objects with a string `type`, is a
//!   [`DecodeError`] naming the field.
//! - Only `indicator` objects become indicators; observables (SCOs such as a bare
//!   `ipv4-addr`), relationships, malware and the rest are not intelligence Fusion matches.
//! - An indicator that cannot be used (unsupported pattern, invalid value, a property of the
//!   wrong type) is reported in [`StixDecoded::skipped`] and the rest of the bundle is still
//!   used: one bad object never hides the good ones.
//! - Patterns (`pattern_type` `stix` or absent) are parsed by a hand-written tokenizer and
//!   recursive-descent parser of the whole STIX 2.1 pattern grammar, so that what Fusion does
//!   not evaluate is named precisely. Fusion evaluates one shape: comparisons with `=`
//!   joined by `OR`, inside one or several `[...]` observation expressions joined by `OR`.
//!   Each such comparison is an independent indicator, so an OR yields one indicator per
//!   comparison: matching any one of them is what the pattern means. `AND`, `FOLLOWEDBY`
//!   and qualifiers (`WITHIN`, `REPEATS`, `START`/`STOP`) make the whole pattern
//!   unsupported, because matching one comparison alone would claim more than the partner
//!   said. A comparison inside an OR that uses another operator, `NOT` or an unsupported
//!   object path is skipped on its own and the other comparisons are kept.
//! - Object paths evaluated: `ipv4-addr:value` and `ipv6-addr:value` (a `/len` makes it a
//!   CIDR), `domain-name:value`, `url:value`, `file:hashes.MD5` / `'SHA-1'` / `'SHA-256'`
//!   (hash names case-insensitive, with or without the hyphen, quoted or not),
//!   `email-addr:value` and `email-message:from_ref.value`.
//! - Indicator id: the STIX id when the pattern has one comparison, else
//!   `<stix id>:<n>` with `n` the 0-based index of the comparison in the pattern (indices
//!   count skipped comparisons too, so ids stay stable). The separator is `:` and not `#`
//!   because ids must pass [`validate::id`].
//! - Other properties: owner, source and sharing list from [`StixContext`]; source kind
//!   partner; `created` (required), `modified` (default `created`), `valid_from` (default
//!   `created`), `valid_until`, `revoked` (default false), `confidence` (default 50), labels
//!   = `indicator_types` then `labels`, without repeats. An error in one of them skips the
//!   whole object once, naming the property (`objects[i].confidence`).
//! - TLP: from `object_marking_refs` and `granular_markings[].marking_ref`: the standard TLP
//!   1.0 and 2.0 marking-definition ids, and marking definitions inside the bundle
//!   (`definition_type: "tlp"`, a `tlp_2_0` extension property, or a `name` such as
//!   `TLP:AMBER+STRICT`). The strictest marking wins. A reference Fusion cannot resolve
//!   counts as the partner's default TLP (it may hide a restriction); no TLP marking at all
//!   means the partner's default.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};

use crate::Timestamp;
use crate::decode::{DecodeError, ErrorCode};
use crate::indicator::{Indicator, IndicatorKind, SourceKind};
use crate::marking::Tlp;
use crate::validate::{self, ValidationError};

/// The publishing partner, configured outside the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StixContext {
    /// The organisation that owns the intelligence (an id).
    pub owner: String,
    /// The partner feed the bundle came from (an id).
    pub source_id: String,
    /// TLP applied when an indicator carries no TLP marking Fusion can read.
    pub default_tlp: Tlp,
    /// Recipients the owner shares its indicators with.
    pub sharing: Vec<String>,
}

/// What a bundle decodes to: the usable indicators and the indicator objects that were not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StixDecoded {
    /// Canonical, validated indicators, in bundle order then comparison order.
    pub indicators: Vec<Indicator>,
    /// Indicator objects (or comparisons of their patterns) that could not be used.
    pub skipped: Vec<Skipped>,
}

/// An indicator object, or one comparison of its pattern, that Fusion could not use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The STIX id of the indicator object (`objects[i]` when it has no usable id).
    pub object_id: String,
    /// Bounded reason code, usable as a metric label.
    pub code: ErrorCode,
    /// Path of the property to blame, for example `objects[3].pattern`.
    pub field: Option<String>,
    /// What was wrong, for example `unsupported pattern: AND in "[...]"`.
    pub reason: String,
}

/// Deepest nesting of brackets and parentheses accepted in a pattern.
pub const MAX_PATTERN_DEPTH: usize = 32;

/// Longest excerpt of a pattern or value quoted in an error message.
const MAX_QUOTE_CHARS: usize = 200;

/// Decodes one STIX 2.1 bundle published by the partner `ctx` into canonical indicators.
pub fn decode_bundle(bytes: &[u8], ctx: &StixContext) -> Result<StixDecoded, DecodeError> {
    check_context(ctx)?;
    let root = parse_json(bytes)?;
    let Value::Object(bundle) = &root else {
        return Err(DecodeError::new(
            ErrorCode::WrongType,
            None,
            format!("a STIX bundle is a JSON object; found {}", json_kind(&root)),
        ));
    };
    match bundle.get("type") {
        None | Some(Value::Null) => {
            return Err(DecodeError::new(
                ErrorCode::MissingField,
                Some("type".into()),
                "missing field `type`; a STIX bundle has \"type\": \"bundle\"",
            ));
        }
        Some(Value::String(t)) if t == "bundle" => {}
        Some(Value::String(t)) => {
            return Err(DecodeError::new(
                ErrorCode::UnsupportedFormat,
                Some("type".into()),
                format!(
                    "a lone STIX {} object is not a bundle; partners must publish bundles (\"type\": \"bundle\")",
                    quote(t)
                ),
            ));
        }
        Some(other) => return Err(wrong_type("type", "a string", other)),
    }
    let objects = match bundle.get("objects") {
        None | Some(Value::Null) => return Ok(StixDecoded::default()),
        Some(Value::Array(a)) => a,
        Some(other) => return Err(wrong_type("objects", "a list of STIX objects", other)),
    };

    // First pass: the bundle's shape, and the marking definitions it carries.
    let mut markings = MarkingTable::default();
    let mut typed = Vec::with_capacity(objects.len());
    for (i, o) in objects.iter().enumerate() {
        let path = format!("objects[{i}]");
        let Value::Object(obj) = o else {
            return Err(wrong_type(&path, "a STIX object", o));
        };
        let ty = req_str(obj, "type", &path)?;
        if ty == "marking-definition" {
            markings.add(obj);
        }
        typed.push((path, ty, obj));
    }

    let mut out = StixDecoded::default();
    for (path, ty, obj) in typed {
        if ty != "indicator" {
            continue;
        }
        if let Err(e) = decode_indicator(obj, &path, &markings, ctx, &mut out) {
            let object_id = match obj.get("id") {
                Some(Value::String(id)) if validate::id("id", id).is_ok() => id.clone(),
                _ => path.clone(),
            };
            out.skipped.push(Skipped {
                object_id,
                code: e.code,
                field: e.field,
                reason: e.detail,
            });
        }
    }
    Ok(out)
}

fn check_context(ctx: &StixContext) -> Result<(), DecodeError> {
    let in_context = |e: ValidationError| {
        DecodeError::new(
            ErrorCode::InvalidValue,
            Some(format!("context.{}", e.field)),
            format!("the partner configuration is invalid: {}", e.reason),
        )
    };
    validate::id("owner", &ctx.owner).map_err(in_context)?;
    validate::id("source_id", &ctx.source_id).map_err(in_context)?;
    for (i, r) in ctx.sharing.iter().enumerate() {
        validate::id(&format!("sharing[{i}]"), r).map_err(in_context)?;
    }
    Ok(())
}

fn parse_json(bytes: &[u8]) -> Result<Value, DecodeError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        DecodeError::new(
            ErrorCode::InvalidUtf8,
            None,
            format!("byte {} is not valid UTF-8", e.valid_up_to()),
        )
    })?;
    serde_json::from_str(text)
        .map_err(|e| DecodeError::new(ErrorCode::MalformedJson, None, e.to_string()))
}

/// Decodes one `indicator` object; comparisons that cannot be used are pushed to
/// `out.skipped`, and an error about the whole object is returned.
fn decode_indicator(
    obj: &Map<String, Value>,
    path: &str,
    markings: &MarkingTable,
    ctx: &StixContext,
    out: &mut StixDecoded,
) -> Result<(), DecodeError> {
    let id = req_str(obj, "id", path)?;
    validate::id("id", id).map_err(|e| invalid(&format!("{path}.id"), e.reason))?;
    let pattern_field = format!("{path}.pattern");
    if let Some(pt) = opt_str(obj, "pattern_type", path)?
        && !pt.eq_ignore_ascii_case("stix")
    {
        return Err(DecodeError::new(
            ErrorCode::UnsupportedPattern,
            Some(format!("{path}.pattern_type")),
            format!(
                "unsupported pattern: pattern_type {}; Fusion evaluates STIX patterns only",
                quote(pt)
            ),
        ));
    }
    let pattern = req_str(obj, "pattern", path)?;
    let created = req_timestamp(obj, "created", path)?;
    let modified = opt_timestamp(obj, "modified", path)?.unwrap_or(created);
    let valid_from = opt_timestamp(obj, "valid_from", path)?.unwrap_or(created);
    let valid_until = opt_timestamp(obj, "valid_until", path)?;
    let revoked = opt_bool(obj, "revoked", path)?.unwrap_or(false);
    let confidence = opt_confidence(obj, path)?.unwrap_or(50);
    let mut labels: Vec<String> = Vec::new();
    for key in ["indicator_types", "labels"] {
        for (k, l) in opt_str_list(obj, key, path)?.into_iter().enumerate() {
            let field = format!("{path}.{key}[{k}]");
            validate::text(&field, l).map_err(|e| invalid(&field, e.reason))?;
            if l.len() > validate::MAX_ID_BYTES {
                return Err(invalid(
                    &field,
                    format!("is longer than {} bytes", validate::MAX_ID_BYTES),
                ));
            }
            if !labels.iter().any(|x| x == l) {
                labels.push(l.to_string());
            }
        }
    }
    let tlp = resolve_tlp(obj, path, markings, ctx.default_tlp)?;

    let comparisons = pattern::evaluable(pattern).map_err(|e| match e {
        pattern::Error::Syntax { pos, msg } => DecodeError::new(
            ErrorCode::InvalidValue,
            Some(pattern_field.clone()),
            format!(
                "pattern syntax error at byte {pos}: {msg} in {}",
                quote(pattern)
            ),
        ),
        pattern::Error::Unsupported(construct) => DecodeError::new(
            ErrorCode::UnsupportedPattern,
            Some(pattern_field.clone()),
            format!("unsupported pattern: {construct} in {}", quote(pattern)),
        ),
    })?;
    let several = comparisons.len() > 1;
    for (n, cmp) in comparisons.iter().enumerate() {
        let skip = |code: ErrorCode, field: String, reason: String| Skipped {
            object_id: id.to_string(),
            code,
            field: Some(field),
            reason: if several {
                format!("{reason} (comparison {n})")
            } else {
                reason
            },
        };
        let (kind, value) = match observable(cmp, pattern) {
            Ok(kv) => kv,
            Err((code, reason)) => {
                out.skipped.push(skip(code, pattern_field.clone(), reason));
                continue;
            }
        };
        let indicator = Indicator {
            schema_version: crate::SCHEMA_VERSION,
            id: if several {
                format!("{id}:{n}")
            } else {
                id.to_string()
            },
            kind,
            value,
            owner: ctx.owner.clone(),
            source_kind: SourceKind::Partner,
            source_id: ctx.source_id.clone(),
            tlp,
            sharing: ctx.sharing.clone(),
            confidence,
            created,
            modified,
            valid_from,
            valid_until,
            revoked,
            labels: labels.clone(),
        };
        match indicator.validate() {
            Ok(()) => out.indicators.push(indicator),
            Err(e) if e.field == "value" => {
                out.skipped.push(skip(
                    ErrorCode::InvalidValue,
                    pattern_field.clone(),
                    e.reason,
                ));
            }
            Err(e) => {
                // Not about this comparison: every other one would fail the same way.
                return Err(invalid(&format!("{path}.{}", e.field), e.reason));
            }
        }
    }
    Ok(())
}

/// The kind and canonical value a supported comparison stands for, or the code and reason
/// it cannot be used.
fn observable(
    cmp: &pattern::Comparison,
    pattern: &str,
) -> Result<(IndicatorKind, String), (ErrorCode, String)> {
    let target = target_kind(&cmp.path);
    let mut problems = Vec::new();
    if cmp.negated {
        problems.push("NOT".to_string());
    }
    if cmp.op != "=" {
        problems.push(format!("operator {}", cmp.op));
    }
    if target.is_none() {
        problems.push(format!("object path {}", cmp.path));
    }
    let Some(kind) = target.filter(|_| problems.is_empty()) else {
        return Err((
            ErrorCode::UnsupportedPattern,
            format!(
                "unsupported pattern: {} in {}",
                problems.join(" and "),
                quote(pattern)
            ),
        ));
    };
    let Some(pattern::Literal::Str(raw)) = &cmp.literal else {
        return Err((
            ErrorCode::InvalidValue,
            format!(
                "{} must be compared with a string literal in {}",
                cmp.path,
                quote(pattern)
            ),
        ));
    };
    let family_error = |fam: &str| {
        (
            ErrorCode::InvalidValue,
            format!("{}: {} is not an {fam} value", cmp.path, quote(raw)),
        )
    };
    let kind = match kind {
        IndicatorKind::Ipv4 | IndicatorKind::Ipv6 if raw.contains('/') => {
            let net = IndicatorKind::Cidr
                .normalize(raw)
                .map_err(|r| (ErrorCode::InvalidValue, format!("{}: {r}", cmp.path)))?;
            let addr = net.split('/').next().unwrap_or_default();
            let family_ok = if kind == IndicatorKind::Ipv4 {
                addr.parse::<Ipv4Addr>().is_ok()
            } else {
                addr.parse::<Ipv6Addr>().is_ok()
            };
            if !family_ok {
                return Err(family_error(if kind == IndicatorKind::Ipv4 {
                    "IPv4"
                } else {
                    "IPv6"
                }));
            }
            return Ok((IndicatorKind::Cidr, net));
        }
        k => k,
    };
    let value = kind
        .normalize(raw)
        .map_err(|r| (ErrorCode::InvalidValue, format!("{}: {r}", cmp.path)))?;
    Ok((kind, value))
}

/// The indicator kind an object path stands for, if Fusion evaluates it.
fn target_kind(path: &pattern::ObjectPath) -> Option<IndicatorKind> {
    use pattern::PathStep::Prop;
    let props: Option<Vec<&str>> = path
        .steps
        .iter()
        .map(|s| match s {
            Prop(p) => Some(p.as_str()),
            pattern::PathStep::Index(_) => None,
        })
        .collect();
    let props = props?;
    match (path.object_type.as_str(), props.as_slice()) {
        ("ipv4-addr", ["value"]) => Some(IndicatorKind::Ipv4),
        ("ipv6-addr", ["value"]) => Some(IndicatorKind::Ipv6),
        ("domain-name", ["value"]) => Some(IndicatorKind::Domain),
        ("url", ["value"]) => Some(IndicatorKind::Url),
        ("email-addr", ["value"]) | ("email-message", ["from_ref", "value"]) => {
            Some(IndicatorKind::Email)
        }
        ("file", ["hashes", algo]) => match algo.to_ascii_uppercase().replace('-', "").as_str() {
            "MD5" => Some(IndicatorKind::Md5),
            "SHA1" => Some(IndicatorKind::Sha1),
            "SHA256" => Some(IndicatorKind::Sha256),
            _ => None,
        },
        _ => None,
    }
}

/// Marking definitions found in the bundle: id → TLP, or `None` for a marking that is not
/// a TLP marking (a statement, for example).
#[derive(Debug, Default)]
struct MarkingTable {
    defined: BTreeMap<String, Option<Tlp>>,
}

/// A marking reference resolved.
enum Resolved {
    Tlp(Tlp),
    NotTlp,
    Unknown,
}

/// The standard TLP 1.0 and TLP 2.0 marking definitions (STIX 2.1 §7.2.1.4 and the TLP 2.0
/// extension), which bundles reference without including.
const STANDARD_TLP: [(&str, Tlp); 9] = [
    (
        "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
        Tlp::Clear,
    ),
    (
        "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
        Tlp::Green,
    ),
    (
        "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
        Tlp::Amber,
    ),
    (
        "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
        Tlp::Red,
    ),
    (
        "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
        Tlp::Clear,
    ),
    (
        "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
        Tlp::Green,
    ),
    (
        "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
        Tlp::Amber,
    ),
    (
        "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
        Tlp::AmberStrict,
    ),
    (
        "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
        Tlp::Red,
    ),
];

impl MarkingTable {
    /// Records a `marking-definition` object; one Fusion cannot read stays unknown.
    fn add(&mut self, obj: &Map<String, Value>) {
        let Some(Value::String(id)) = obj.get("id") else {
            return;
        };
        let Some(tlp) = marking_tlp(obj) else {
            return;
        };
        let entry = self.defined.entry(id.clone()).or_insert(tlp);
        // The same id defined twice: keep the stricter reading.
        *entry = (*entry).max(tlp);
    }

    fn resolve(&self, id: &str) -> Resolved {
        if let Some((_, t)) = STANDARD_TLP.iter().find(|(s, _)| *s == id) {
            return Resolved::Tlp(*t);
        }
        match self.defined.get(id) {
            Some(Some(t)) => Resolved::Tlp(*t),
            Some(None) => Resolved::NotTlp,
            None => Resolved::Unknown,
        }
    }
}

/// The TLP a marking definition states: `Some(Some(tlp))`; `Some(None)` for a marking that
/// is not TLP; `None` for a TLP marking with a level Fusion does not know.
fn marking_tlp(obj: &Map<String, Value>) -> Option<Option<Tlp>> {
    let mut claims_tlp = false;
    if let Some(Value::String(dt)) = obj.get("definition_type")
        && dt.eq_ignore_ascii_case("tlp")
    {
        claims_tlp = true;
        if let Some(Value::Object(def)) = obj.get("definition")
            && let Some(Value::String(level)) = def.get("tlp")
            && let Some(t) = tlp_from_name(level)
        {
            return Some(Some(t));
        }
    }
    if let Some(Value::Object(exts)) = obj.get("extensions") {
        for ext in exts.values() {
            if let Value::Object(e) = ext
                && let Some(Value::String(level)) = e.get("tlp_2_0")
            {
                claims_tlp = true;
                if let Some(t) = tlp_from_name(level) {
                    return Some(Some(t));
                }
            }
        }
    }
    if let Some(Value::String(name)) = obj.get("name")
        && name
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("tlp:"))
    {
        claims_tlp = true;
        if let Some(t) = tlp_from_name(name) {
            return Some(Some(t));
        }
    }
    if claims_tlp { None } else { Some(None) }
}

/// Reads `clear`, `TLP:AMBER+STRICT`, `white`… as a TLP level.
fn tlp_from_name(name: &str) -> Option<Tlp> {
    let n = name.trim().to_ascii_lowercase();
    let n = n.strip_prefix("tlp:").unwrap_or(&n).trim();
    match n {
        "clear" | "white" => Some(Tlp::Clear),
        "green" => Some(Tlp::Green),
        "amber" => Some(Tlp::Amber),
        "amber+strict" => Some(Tlp::AmberStrict),
        "red" => Some(Tlp::Red),
        _ => None,
    }
}

/// The strictest TLP among the object's markings; unresolvable references count as the
/// default, no TLP marking at all means the default.
fn resolve_tlp(
    obj: &Map<String, Value>,
    path: &str,
    markings: &MarkingTable,
    default: Tlp,
) -> Result<Tlp, DecodeError> {
    let mut refs: Vec<&str> = opt_str_list(obj, "object_marking_refs", path)?;
    match obj.get("granular_markings") {
        None | Some(Value::Null) => {}
        Some(Value::Array(gs)) => {
            for (i, g) in gs.iter().enumerate() {
                let gpath = format!("{path}.granular_markings[{i}]");
                let Value::Object(g) = g else {
                    return Err(wrong_type(&gpath, "a granular marking object", g));
                };
                if let Some(r) = opt_str(g, "marking_ref", &gpath)? {
                    refs.push(r);
                }
            }
        }
        Some(other) => {
            return Err(wrong_type(
                &format!("{path}.granular_markings"),
                "a list",
                other,
            ));
        }
    }
    let mut strictest: Option<Tlp> = None;
    let mut unknown = false;
    for r in refs {
        match markings.resolve(r) {
            Resolved::Tlp(t) => strictest = Some(strictest.map_or(t, |s| s.max(t))),
            Resolved::NotTlp => {}
            Resolved::Unknown => unknown = true,
        }
    }
    Ok(match strictest {
        None => default,
        Some(t) if unknown => t.max(default),
        Some(t) => t,
    })
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(field: &str, expected: &str, found: &Value) -> DecodeError {
    DecodeError::new(
        ErrorCode::WrongType,
        Some(field.to_string()),
        format!("expected {expected}, found {}", json_kind(found)),
    )
}

fn invalid(field: &str, reason: impl Into<String>) -> DecodeError {
    DecodeError::new(ErrorCode::InvalidValue, Some(field.to_string()), reason)
}

/// A string quoted for an error message, escaped and cut to a bounded length.
fn quote(s: &str) -> String {
    if s.chars().count() <= MAX_QUOTE_CHARS {
        format!("{s:?}")
    } else {
        let cut: String = s.chars().take(MAX_QUOTE_CHARS).collect();
        format!("{cut:?}…")
    }
}

fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, DecodeError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong_type(&format!("{path}.{key}"), "a string", other)),
    }
}

fn req_str<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str, DecodeError> {
    opt_str(obj, key, path)?.ok_or_else(|| {
        DecodeError::new(
            ErrorCode::MissingField,
            Some(format!("{path}.{key}")),
            format!("missing field `{key}`"),
        )
    })
}

fn opt_str_list<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Vec<&'a str>, DecodeError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.as_str()),
                other => Err(wrong_type(&format!("{path}.{key}[{i}]"), "a string", other)),
            })
            .collect(),
        Some(other) => Err(wrong_type(
            &format!("{path}.{key}"),
            "a list of strings",
            other,
        )),
    }
}

fn opt_bool(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<bool>, DecodeError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(wrong_type(&format!("{path}.{key}"), "a boolean", other)),
    }
}

fn opt_confidence(obj: &Map<String, Value>, path: &str) -> Result<Option<u8>, DecodeError> {
    let field = format!("{path}.confidence");
    match obj.get("confidence") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(c) if c <= 100 => Ok(u8::try_from(c).ok()),
            _ => Err(invalid(
                &field,
                format!("{n} is not an integer from 0 to 100"),
            )),
        },
        Some(other) => Err(wrong_type(&field, "an integer from 0 to 100", other)),
    }
}

fn opt_timestamp(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<Timestamp>, DecodeError> {
    let Some(s) = opt_str(obj, key, path)? else {
        return Ok(None);
    };
    s.parse::<Timestamp>().map(Some).map_err(|e| {
        invalid(
            &format!("{path}.{key}"),
            format!("{} is not an RFC 3339 timestamp: {e}", quote(s)),
        )
    })
}

fn req_timestamp(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Timestamp, DecodeError> {
    opt_timestamp(obj, key, path)?.ok_or_else(|| {
        DecodeError::new(
            ErrorCode::MissingField,
            Some(format!("{path}.{key}")),
            format!("missing field `{key}`"),
        )
    })
}

/// STIX 2.1 patterning (§9): a tokenizer and a recursive-descent parser of the whole
/// grammar, and the reduction to the comparisons Fusion evaluates.
mod pattern {
    use std::fmt;

    /// Why a pattern cannot be evaluated.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Error {
        /// Not a STIX pattern.
        Syntax { pos: usize, msg: String },
        /// Valid STIX, but a construct Fusion does not evaluate (named).
        Unsupported(String),
    }

    fn syntax<T>(pos: usize, msg: impl Into<String>) -> Result<T, Error> {
        Err(Error::Syntax {
            pos,
            msg: msg.into(),
        })
    }

    /// A literal on the right of a comparison.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Literal {
        /// `'text'`, escapes resolved.
        Str(String),
        /// `t'…'`, `h'…'` or `b'…'`.
        Typed,
        /// An integer or a float.
        Num,
        /// `true` or `false`.
        Bool,
        /// `('a', 'b')` for `IN`.
        Set,
    }

    /// One step of an object path after the object type.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum PathStep {
        /// A property name (quoted or not).
        Prop(String),
        /// A list index: a number or `*`.
        Index(String),
    }

    /// `type:prop.prop[*]…`
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ObjectPath {
        pub object_type: String,
        pub steps: Vec<PathStep>,
    }

    impl fmt::Display for ObjectPath {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{}:", self.object_type)?;
            for (i, s) in self.steps.iter().enumerate() {
                match s {
                    PathStep::Prop(p) => {
                        let plain = p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                        let dot = if i == 0 { "" } else { "." };
                        if plain {
                            write!(f, "{dot}{p}")?;
                        } else {
                            write!(f, "{dot}'{}'", p.escape_debug())?;
                        }
                    }
                    PathStep::Index(n) => write!(f, "[{n}]")?,
                }
            }
            Ok(())
        }
    }

    /// `path [NOT] op literal`, or `EXISTS path` (op `EXISTS`, no literal).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Comparison {
        pub path: ObjectPath,
        pub negated: bool,
        pub op: String,
        pub literal: Option<Literal>,
    }

    /// A comparison expression; what Fusion does not evaluate keeps no sub-tree.
    #[derive(Debug)]
    enum CmpExpr {
        Test(Comparison),
        Or(Vec<CmpExpr>),
        And,
    }

    /// An observation expression; what Fusion does not evaluate keeps only its name.
    #[derive(Debug)]
    enum ObsExpr {
        Obs(CmpExpr),
        Or(Vec<ObsExpr>),
        And,
        FollowedBy,
        /// An observation with qualifiers: the first one's name.
        Qualified(&'static str),
    }

    /// The comparisons of `pattern`, in order, if its structure is one Fusion evaluates
    /// (comparisons and observations joined by OR only).
    pub fn evaluable(pattern: &str) -> Result<Vec<Comparison>, Error> {
        let tokens = lex(pattern)?;
        let mut p = Parser {
            tokens,
            i: 0,
            depth: 0,
            end: pattern.len(),
        };
        let expr = p.observations()?;
        if let Some((pos, t)) = p.tokens.get(p.i) {
            return syntax(*pos, format!("unexpected {t} after the pattern"));
        }
        let mut out = Vec::new();
        flatten(expr, &mut out)?;
        Ok(out)
    }

    fn flatten(e: ObsExpr, out: &mut Vec<Comparison>) -> Result<(), Error> {
        match e {
            ObsExpr::Obs(c) => flatten_cmp(c, out),
            ObsExpr::Or(v) => v.into_iter().try_for_each(|x| flatten(x, out)),
            ObsExpr::And => Err(Error::Unsupported("AND".into())),
            ObsExpr::FollowedBy => Err(Error::Unsupported("FOLLOWEDBY".into())),
            ObsExpr::Qualified(q) => Err(Error::Unsupported(format!("qualifier {q}"))),
        }
    }

    fn flatten_cmp(c: CmpExpr, out: &mut Vec<Comparison>) -> Result<(), Error> {
        match c {
            CmpExpr::Test(t) => {
                out.push(t);
                Ok(())
            }
            CmpExpr::Or(v) => v.into_iter().try_for_each(|x| flatten_cmp(x, out)),
            CmpExpr::And => Err(Error::Unsupported("AND".into())),
        }
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Tok {
        LBrack,
        RBrack,
        LParen,
        RParen,
        Comma,
        Colon,
        Dot,
        Star,
        Op(&'static str),
        Word(String),
        Str(String),
        Typed,
        Num(String),
    }

    impl fmt::Display for Tok {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Tok::LBrack => f.write_str("'['"),
                Tok::RBrack => f.write_str("']'"),
                Tok::LParen => f.write_str("'('"),
                Tok::RParen => f.write_str("')'"),
                Tok::Comma => f.write_str("','"),
                Tok::Colon => f.write_str("':'"),
                Tok::Dot => f.write_str("'.'"),
                Tok::Star => f.write_str("'*'"),
                Tok::Op(o) => write!(f, "operator {o}"),
                Tok::Word(w) => write!(f, "{:?}", cut(w)),
                Tok::Str(_) | Tok::Typed => f.write_str("a string literal"),
                Tok::Num(n) => write!(f, "number {}", cut(n)),
            }
        }
    }

    fn cut(s: &str) -> String {
        s.chars().take(40).collect()
    }

    fn lex(s: &str) -> Result<Vec<(usize, Tok)>, Error> {
        let mut out = Vec::new();
        let mut it = s.char_indices().peekable();
        while let Some((pos, c)) = it.next() {
            let tok = match c {
                c if c.is_whitespace() => continue,
                '[' => Tok::LBrack,
                ']' => Tok::RBrack,
                '(' => Tok::LParen,
                ')' => Tok::RParen,
                ',' => Tok::Comma,
                ':' => Tok::Colon,
                '.' => Tok::Dot,
                '*' => Tok::Star,
                '=' => Tok::Op("="),
                '!' => match it.next_if(|&(_, c)| c == '=') {
                    Some(_) => Tok::Op("!="),
                    None => return syntax(pos, "'!' must be followed by '='"),
                },
                '<' => {
                    if it.next_if(|&(_, c)| c == '=').is_some() {
                        Tok::Op("<=")
                    } else if it.next_if(|&(_, c)| c == '>').is_some() {
                        Tok::Op("<>")
                    } else {
                        Tok::Op("<")
                    }
                }
                '>' => match it.next_if(|&(_, c)| c == '=') {
                    Some(_) => Tok::Op(">="),
                    None => Tok::Op(">"),
                },
                '\'' => Tok::Str(string(&mut it, pos)?),
                c if c.is_ascii_digit()
                    || ((c == '-' || c == '+')
                        && it.peek().is_some_and(|(_, d)| d.is_ascii_digit())) =>
                {
                    let mut n = String::from(c);
                    while let Some((_, d)) =
                        it.next_if(|(_, d)| d.is_ascii_alphanumeric() || *d == '.')
                    {
                        n.push(d);
                    }
                    Tok::Num(n)
                }
                c if c.is_ascii_alphabetic() || c == '_' => {
                    let mut w = String::from(c);
                    while let Some((_, d)) =
                        it.next_if(|(_, d)| d.is_ascii_alphanumeric() || *d == '_' || *d == '-')
                    {
                        w.push(d);
                    }
                    if matches!(w.as_str(), "t" | "h" | "b")
                        && it.next_if(|&(_, q)| q == '\'').is_some()
                    {
                        string(&mut it, pos)?;
                        Tok::Typed
                    } else {
                        Tok::Word(w)
                    }
                }
                other => return syntax(pos, format!("unexpected character {other:?}")),
            };
            out.push((pos, tok));
        }
        Ok(out)
    }

    /// The rest of a quoted string whose opening quote is consumed; `\'` and `\\` are
    /// escapes, any other backslash is kept as written.
    fn string(
        it: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
        start: usize,
    ) -> Result<String, Error> {
        let mut s = String::new();
        while let Some((_, c)) = it.next() {
            match c {
                '\'' => return Ok(s),
                '\\' => match it.next_if(|&(_, e)| e == '\'' || e == '\\') {
                    Some((_, e)) => s.push(e),
                    None => s.push('\\'),
                },
                c => s.push(c),
            }
        }
        syntax(start, "unterminated string literal")
    }

    struct Parser {
        tokens: Vec<(usize, Tok)>,
        i: usize,
        depth: usize,
        end: usize,
    }

    impl Parser {
        fn peek(&self) -> Option<&Tok> {
            self.tokens.get(self.i).map(|(_, t)| t)
        }

        fn pos(&self) -> usize {
            self.tokens.get(self.i).map_or(self.end, |(p, _)| *p)
        }

        fn next(&mut self) -> Option<Tok> {
            let t = self.tokens.get(self.i).map(|(_, t)| t.clone());
            if t.is_some() {
                self.i += 1;
            }
            t
        }

        fn is_kw(&self, kw: &str) -> bool {
            matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
        }

        fn eat_kw(&mut self, kw: &str) -> bool {
            let yes = self.is_kw(kw);
            if yes {
                self.i += 1;
            }
            yes
        }

        fn expect(&mut self, want: &Tok, what: &str) -> Result<(), Error> {
            let pos = self.pos();
            match self.next() {
                Some(t) if &t == want => Ok(()),
                Some(t) => syntax(pos, format!("expected {what}, found {t}")),
                None => syntax(pos, format!("expected {what}, found the end")),
            }
        }

        fn expect_kw(&mut self, kw: &str) -> Result<(), Error> {
            if self.eat_kw(kw) {
                Ok(())
            } else {
                syntax(self.pos(), format!("expected {kw}"))
            }
        }

        fn enter(&mut self) -> Result<(), Error> {
            self.depth += 1;
            if self.depth > super::MAX_PATTERN_DEPTH {
                return syntax(
                    self.pos(),
                    format!("nested deeper than {}", super::MAX_PATTERN_DEPTH),
                );
            }
            Ok(())
        }

        fn leave(&mut self) {
            self.depth = self.depth.saturating_sub(1);
        }

        /// observations := or (FOLLOWEDBY or)*
        fn observations(&mut self) -> Result<ObsExpr, Error> {
            let mut v = vec![self.obs_or()?];
            while self.eat_kw("FOLLOWEDBY") {
                v.push(self.obs_or()?);
            }
            Ok(one_or(v, |_| ObsExpr::FollowedBy))
        }

        fn obs_or(&mut self) -> Result<ObsExpr, Error> {
            let mut v = vec![self.obs_and()?];
            while self.eat_kw("OR") {
                v.push(self.obs_and()?);
            }
            Ok(one_or(v, ObsExpr::Or))
        }

        fn obs_and(&mut self) -> Result<ObsExpr, Error> {
            let mut v = vec![self.obs_qualified()?];
            while self.eat_kw("AND") {
                v.push(self.obs_qualified()?);
            }
            Ok(one_or(v, |_| ObsExpr::And))
        }

        /// An observation followed by any number of WITHIN / REPEATS / START…STOP.
        fn obs_qualified(&mut self) -> Result<ObsExpr, Error> {
            let e = self.obs_atom()?;
            let mut qs = Vec::new();
            loop {
                if self.eat_kw("WITHIN") {
                    self.number()?;
                    self.expect_kw("SECONDS")?;
                    qs.push("WITHIN");
                } else if self.eat_kw("REPEATS") {
                    self.number()?;
                    self.expect_kw("TIMES")?;
                    qs.push("REPEATS");
                } else if self.eat_kw("START") {
                    self.timestamp()?;
                    self.expect_kw("STOP")?;
                    self.timestamp()?;
                    qs.push("START/STOP");
                } else {
                    break;
                }
            }
            Ok(match qs.first() {
                None => e,
                Some(&q) => ObsExpr::Qualified(q),
            })
        }

        fn number(&mut self) -> Result<(), Error> {
            let pos = self.pos();
            match self.next() {
                Some(Tok::Num(_)) => Ok(()),
                _ => syntax(pos, "expected a number"),
            }
        }

        fn timestamp(&mut self) -> Result<(), Error> {
            let pos = self.pos();
            match self.next() {
                Some(Tok::Typed | Tok::Str(_)) => Ok(()),
                _ => syntax(pos, "expected a timestamp literal t'…'"),
            }
        }

        fn obs_atom(&mut self) -> Result<ObsExpr, Error> {
            let pos = self.pos();
            match self.next() {
                Some(Tok::LBrack) => {
                    self.enter()?;
                    let c = self.cmp_or()?;
                    self.expect(&Tok::RBrack, "']'")?;
                    self.leave();
                    Ok(ObsExpr::Obs(c))
                }
                Some(Tok::LParen) => {
                    self.enter()?;
                    let e = self.observations()?;
                    self.expect(&Tok::RParen, "')'")?;
                    self.leave();
                    Ok(e)
                }
                Some(t) => syntax(pos, format!("expected '[' or '(', found {t}")),
                None => syntax(pos, "expected '[' or '(', found the end"),
            }
        }

        fn cmp_or(&mut self) -> Result<CmpExpr, Error> {
            let mut v = vec![self.cmp_and()?];
            while self.eat_kw("OR") {
                v.push(self.cmp_and()?);
            }
            Ok(one_or(v, CmpExpr::Or))
        }

        fn cmp_and(&mut self) -> Result<CmpExpr, Error> {
            let mut v = vec![self.cmp_atom()?];
            while self.eat_kw("AND") {
                v.push(self.cmp_atom()?);
            }
            Ok(one_or(v, |_| CmpExpr::And))
        }

        fn cmp_atom(&mut self) -> Result<CmpExpr, Error> {
            if self.peek() == Some(&Tok::LParen) {
                self.i += 1;
                self.enter()?;
                let c = self.cmp_or()?;
                self.expect(&Tok::RParen, "')'")?;
                self.leave();
                return Ok(c);
            }
            if self.eat_kw("EXISTS") {
                let path = self.path()?;
                return Ok(CmpExpr::Test(Comparison {
                    path,
                    negated: false,
                    op: "EXISTS".into(),
                    literal: None,
                }));
            }
            let path = self.path()?;
            let negated = self.eat_kw("NOT");
            let pos = self.pos();
            let op = match self.next() {
                Some(Tok::Op(o)) => o.to_string(),
                Some(Tok::Word(w))
                    if ["IN", "LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET"]
                        .iter()
                        .any(|k| w.eq_ignore_ascii_case(k)) =>
                {
                    w.to_ascii_uppercase()
                }
                Some(t) => {
                    return syntax(pos, format!("expected a comparison operator, found {t}"));
                }
                None => return syntax(pos, "expected a comparison operator, found the end"),
            };
            let literal = self.literal()?;
            Ok(CmpExpr::Test(Comparison {
                path,
                negated,
                op,
                literal: Some(literal),
            }))
        }

        fn literal(&mut self) -> Result<Literal, Error> {
            let pos = self.pos();
            match self.next() {
                Some(Tok::Str(s)) => Ok(Literal::Str(s)),
                Some(Tok::Typed) => Ok(Literal::Typed),
                Some(Tok::Num(_)) => Ok(Literal::Num),
                Some(Tok::Word(w))
                    if w.eq_ignore_ascii_case("true") || w.eq_ignore_ascii_case("false") =>
                {
                    Ok(Literal::Bool)
                }
                Some(Tok::LParen) => {
                    self.enter()?;
                    if self.peek() != Some(&Tok::RParen) {
                        self.literal()?;
                        while self.peek() == Some(&Tok::Comma) {
                            self.i += 1;
                            self.literal()?;
                        }
                    }
                    self.expect(&Tok::RParen, "')'")?;
                    self.leave();
                    Ok(Literal::Set)
                }
                Some(t) => syntax(pos, format!("expected a literal, found {t}")),
                None => syntax(pos, "expected a literal, found the end"),
            }
        }

        /// object-type ':' first-component ( '.' component | '[' index ']' )*
        fn path(&mut self) -> Result<ObjectPath, Error> {
            let pos = self.pos();
            let object_type = match self.next() {
                Some(Tok::Word(w)) => w,
                Some(t) => return syntax(pos, format!("expected an object path, found {t}")),
                None => return syntax(pos, "expected an object path, found the end"),
            };
            self.expect(&Tok::Colon, "':' after the object type")?;
            let mut steps = vec![self.component()?];
            loop {
                match self.peek() {
                    Some(Tok::Dot) => {
                        self.i += 1;
                        steps.push(self.component()?);
                    }
                    Some(Tok::LBrack) => {
                        self.i += 1;
                        let pos = self.pos();
                        let index = match self.next() {
                            Some(Tok::Star) => "*".to_string(),
                            Some(Tok::Num(n)) => n,
                            _ => return syntax(pos, "expected a list index or '*'"),
                        };
                        self.expect(&Tok::RBrack, "']' after the list index")?;
                        steps.push(PathStep::Index(index));
                    }
                    _ => break,
                }
            }
            Ok(ObjectPath { object_type, steps })
        }

        fn component(&mut self) -> Result<PathStep, Error> {
            let pos = self.pos();
            match self.next() {
                Some(Tok::Word(w)) => Ok(PathStep::Prop(w)),
                Some(Tok::Str(s)) => Ok(PathStep::Prop(s)),
                Some(t) => syntax(pos, format!("expected a property name, found {t}")),
                None => syntax(pos, "expected a property name, found the end"),
            }
        }
    }

    /// The single element, or the elements joined by `join`.
    fn one_or<T>(mut v: Vec<T>, join: impl FnOnce(Vec<T>) -> T) -> T {
        if v.len() == 1
            && let Some(x) = v.pop()
        {
            return x;
        }
        join(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: &str = "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f";

    fn ctx() -> StixContext {
        StixContext {
            owner: "partner-a".into(),
            source_id: "partner-a-taxii".into(),
            default_tlp: Tlp::Amber,
            sharing: vec!["FR".into(), "DE".into()],
        }
    }

    /// A bundle with one indicator object carrying `extra` properties.
    fn bundle_with(pattern: &str, extra: &str) -> String {
        let pattern = serde_json::to_string(pattern).expect("a string serializes");
        format!(
            r#"{{"type":"bundle","id":"bundle--1","objects":[{{"type":"indicator","spec_version":"2.1",
            "id":"{ID}","created":"2024-03-01T10:00:00.000Z","modified":"2024-03-02T10:00:00.000Z",
            "pattern_type":"stix","pattern":{pattern},"valid_from":"2024-03-01T12:00:00Z"{extra}}}]}}"#
        )
    }

    fn decode(s: &str) -> StixDecoded {
        decode_bundle(s.as_bytes(), &ctx()).expect("the bundle decodes")
    }

    fn decode_err(s: &str) -> DecodeError {
        decode_bundle(s.as_bytes(), &ctx()).expect_err("the bundle is rejected")
    }

    fn one(pattern: &str) -> Indicator {
        let d = decode(&bundle_with(pattern, ""));
        assert!(d.skipped.is_empty(), "{pattern}: skipped {:?}", d.skipped);
        assert_eq!(d.indicators.len(), 1, "{pattern}");
        d.indicators.into_iter().next().expect("one indicator")
    }

    fn skipped(pattern: &str) -> Skipped {
        let d = decode(&bundle_with(pattern, ""));
        assert!(d.indicators.is_empty(), "{pattern}: {:?}", d.indicators);
        assert_eq!(d.skipped.len(), 1, "{pattern}: {:?}", d.skipped);
        d.skipped.into_iter().next().expect("one skipped entry")
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("a valid timestamp")
    }

    #[test]
    fn a_single_comparison_becomes_one_canonical_indicator() {
        let i = one("[ipv4-addr:value = '198.51.100.7']");
        assert_eq!(i.id, ID);
        assert_eq!(
            (i.kind, i.value.as_str()),
            (IndicatorKind::Ipv4, "198.51.100.7")
        );
        assert_eq!(i.owner, "partner-a");
        assert_eq!(i.source_id, "partner-a-taxii");
        assert_eq!(i.source_kind, SourceKind::Partner);
        assert_eq!(i.sharing, vec!["FR".to_string(), "DE".to_string()]);
        assert_eq!(i.created, ts("2024-03-01T10:00:00Z"));
        assert_eq!(i.modified, ts("2024-03-02T10:00:00Z"));
        assert_eq!(i.valid_from, ts("2024-03-01T12:00:00Z"));
        assert_eq!(i.valid_until, None);
        assert_eq!(i.confidence, 50);
        assert!(!i.revoked);
        assert_eq!(i.tlp, Tlp::Amber, "no marking: the partner's default");
        assert_eq!(i.validate(), Ok(()));
    }

    #[test]
    fn every_supported_object_path_maps_to_its_kind() {
        use IndicatorKind::*;
        let md5 = "D41D8CD98F00B204E9800998ECF8427E";
        let sha1 = "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709";
        let sha256 = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
        let cases = [
            (
                "ipv4-addr:value = '198.51.100.7'".to_string(),
                Ipv4,
                "198.51.100.7".to_string(),
            ),
            (
                "ipv4-addr:value = '198.51.100.7/24'".into(),
                Cidr,
                "198.51.100.0/24".into(),
            ),
            (
                "ipv6-addr:value = '2001:0DB8::0001'".into(),
                Ipv6,
                "2001:db8::1".into(),
            ),
            (
                "ipv6-addr:value = '2001:db8::1/32'".into(),
                Cidr,
                "2001:db8::/32".into(),
            ),
            (
                "domain-name:value = 'Evil.Example.'".into(),
                Domain,
                "evil.example".into(),
            ),
            (
                "url:value = 'HTTP://Evil.Example/a?b=1'".into(),
                Url,
                "http://evil.example/a?b=1".into(),
            ),
            (
                format!("file:hashes.MD5 = '{md5}'"),
                Md5,
                md5.to_ascii_lowercase(),
            ),
            (
                format!("file:hashes.md5 = '{md5}'"),
                Md5,
                md5.to_ascii_lowercase(),
            ),
            (
                format!("file:hashes.'MD5' = '{md5}'"),
                Md5,
                md5.to_ascii_lowercase(),
            ),
            (
                format!("file:hashes.'SHA-1' = '{sha1}'"),
                Sha1,
                sha1.to_ascii_lowercase(),
            ),
            (
                format!("file:hashes.SHA1 = '{sha1}'"),
                Sha1,
                sha1.to_ascii_lowercase(),
            ),
            (
                format!("file:hashes.'sha-1' = '{sha1}'"),
                Sha1,
                sha1.to_ascii_lowercase(),
            ),
            (
                format!("file:hashes.'SHA-256' = '{sha256}'"),
                Sha256,
                sha256.to_ascii_lowercase(),
            ),
            (
                format!("file:hashes.SHA256 = '{sha256}'"),
                Sha256,
                sha256.to_ascii_lowercase(),
            ),
            (
                format!("file:hashes.'sha256' = '{sha256}'"),
                Sha256,
                sha256.to_ascii_lowercase(),
            ),
            (
                "email-addr:value = 'Bob@Evil.Example'".into(),
                Email,
                "bob@evil.example".into(),
            ),
            (
                "email-message:from_ref.value = 'ceo@evil.example'".into(),
                Email,
                "ceo@evil.example".into(),
            ),
        ];
        for (cmp, kind, value) in cases {
            let i = one(&format!("[{cmp}]"));
            assert_eq!((i.kind, i.value.as_str()), (kind, value.as_str()), "{cmp}");
        }
    }

    #[test]
    fn string_escapes_are_resolved() {
        let i = one(r"[url:value = 'http://evil.example/it\'s']");
        assert_eq!(i.value, "http://evil.example/it's");
        let s = skipped(r"[domain-name:value = 'a\\b.example']");
        assert_eq!(s.code, ErrorCode::InvalidValue);
        assert!(s.reason.contains(r#""a\\b.example""#), "{}", s.reason);
    }

    #[test]
    fn an_or_yields_one_indicator_per_comparison_with_indexed_ids() {
        let d = decode(&bundle_with(
            "[ipv4-addr:value = '1.2.3.4' OR domain-name:value = 'evil.example'] OR [url:value = 'http://x.example/']",
            "",
        ));
        assert!(d.skipped.is_empty());
        let got: Vec<_> = d
            .indicators
            .iter()
            .map(|i| (i.id.as_str(), i.kind, i.value.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (&*format!("{ID}:0"), IndicatorKind::Ipv4, "1.2.3.4"),
                (&*format!("{ID}:1"), IndicatorKind::Domain, "evil.example"),
                (&*format!("{ID}:2"), IndicatorKind::Url, "http://x.example/"),
            ]
        );
        // Parentheses only group.
        let d = decode(&bundle_with(
            "([ipv4-addr:value = '1.2.3.4'] OR ([domain-name:value = 'evil.example' OR (url:value = 'http://x.example/')]))",
            "",
        ));
        assert_eq!(d.indicators.len(), 3);
    }

    #[test]
    fn an_unsupported_comparison_inside_an_or_is_skipped_alone() {
        let d = decode(&bundle_with(
            "[domain-name:value = 'evil.example' OR file:name = 'x.exe' OR ipv4-addr:value = '1.2.3.999']",
            "",
        ));
        let ids: Vec<_> = d.indicators.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, vec![format!("{ID}:0")]);
        assert_eq!(d.skipped.len(), 2);
        assert_eq!(d.skipped[0].code, ErrorCode::UnsupportedPattern);
        assert!(
            d.skipped[0]
                .reason
                .starts_with("unsupported pattern: object path file:name in ")
        );
        assert!(d.skipped[0].reason.ends_with("(comparison 1)"));
        assert_eq!(d.skipped[1].code, ErrorCode::InvalidValue);
        assert!(d.skipped[1].reason.contains("(comparison 2)"));
        assert_eq!(d.skipped[1].field.as_deref(), Some("objects[0].pattern"));
        assert_eq!(d.skipped[1].object_id, ID);
    }

    #[test]
    fn each_unsupported_construct_is_named() {
        let cases = [
            (
                "[ipv4-addr:value = '1.2.3.4' AND domain-name:value = 'evil.example']",
                "AND",
            ),
            (
                "[ipv4-addr:value = '1.2.3.4'] AND [domain-name:value = 'evil.example']",
                "AND",
            ),
            (
                "[ipv4-addr:value = '1.2.3.4'] FOLLOWEDBY [domain-name:value = 'evil.example']",
                "FOLLOWEDBY",
            ),
            (
                "[ipv4-addr:value = '1.2.3.4'] WITHIN 300 SECONDS",
                "qualifier WITHIN",
            ),
            (
                "[ipv4-addr:value = '1.2.3.4'] REPEATS 5 TIMES",
                "qualifier REPEATS",
            ),
            (
                "[ipv4-addr:value = '1.2.3.4'] START t'2016-06-01T00:00:00Z' STOP t'2016-07-01T00:00:00Z'",
                "qualifier START/STOP",
            ),
            ("[domain-name:value MATCHES '^evil']", "operator MATCHES"),
            ("[domain-name:value LIKE 'evil%']", "operator LIKE"),
            ("[ipv4-addr:value IN ('1.2.3.4', '5.6.7.8')]", "operator IN"),
            (
                "[ipv4-addr:value ISSUBSET '10.0.0.0/8']",
                "operator ISSUBSET",
            ),
            ("[ipv4-addr:value != '1.2.3.4']", "operator !="),
            ("[ipv4-addr:value <> '1.2.3.4']", "operator <>"),
            ("[file:size > 1000]", "operator > and object path file:size"),
            ("[ipv4-addr:value NOT = '1.2.3.4']", "NOT"),
            ("[EXISTS ipv4-addr:value]", "operator EXISTS"),
            (
                "[windows-registry-key:key = 'HKEY_LOCAL_MACHINE\\\\Run']",
                "object path windows-registry-key:key",
            ),
            ("[process:name = 'evil.exe']", "object path process:name"),
            ("[file:name = 'CBricksDoc']", "object path file:name"),
            (
                "[file:hashes.'SHA-512' = 'aa']",
                "object path file:hashes.'SHA-512'",
            ),
            (
                "[email-message:body_multipart[*].body_raw_ref.name = 'x.exe']",
                "object path email-message:body_multipart[*].body_raw_ref.name",
            ),
        ];
        for (pattern, construct) in cases {
            let s = skipped(pattern);
            assert_eq!(s.code, ErrorCode::UnsupportedPattern, "{pattern}");
            assert_eq!(s.field.as_deref(), Some("objects[0].pattern"), "{pattern}");
            assert!(
                s.reason
                    .starts_with(&format!("unsupported pattern: {construct} in \"")),
                "{pattern}: {}",
                s.reason
            );
        }
    }

    #[test]
    fn other_pattern_languages_are_named() {
        for lang in ["sigma", "snort", "yara", "suricata", "pcre"] {
            let b = bundle_with("alert tcp any any -> any any", "").replace(
                r#""pattern_type":"stix""#,
                &format!(r#""pattern_type":"{lang}""#),
            );
            let s = decode(&b).skipped.into_iter().next().expect("skipped");
            assert_eq!(s.code, ErrorCode::UnsupportedPattern);
            assert_eq!(s.field.as_deref(), Some("objects[0].pattern_type"));
            assert!(
                s.reason
                    .starts_with(&format!("unsupported pattern: pattern_type \"{lang}\""))
            );
        }
        // An absent pattern_type means STIX (STIX 2.0 bundles have none).
        let b = bundle_with("[domain-name:value = 'evil.example']", "")
            .replace(r#""pattern_type":"stix","#, "");
        assert_eq!(decode(&b).indicators.len(), 1);
    }

    #[test]
    fn syntax_errors_are_invalid_values_with_a_position() {
        for p in [
            "ipv4-addr:value = '1.2.3.4'",
            "[ipv4-addr:value = '1.2.3.4'",
            "[ipv4-addr:value = '1.2.3.4]",
            "[ipv4-addr:value '1.2.3.4']",
            "[ipv4-addr = '1.2.3.4']",
            "[ipv4-addr:value = '1.2.3.4'] OR",
            "[ipv4-addr:value = '1.2.3.4'] [domain-name:value = 'a.example']",
            "[ipv4-addr:value = '1.2.3.4'] WITHIN SECONDS",
            "",
            "[]",
            "[a:b ! 'c']",
        ] {
            let s = skipped(p);
            assert_eq!(s.code, ErrorCode::InvalidValue, "{p:?}");
            assert!(
                s.reason.starts_with("pattern syntax error at byte "),
                "{p:?}: {}",
                s.reason
            );
        }
        let deep = format!(
            "{}[ipv4-addr:value = '1.2.3.4']{}",
            "(".repeat(100),
            ")".repeat(100)
        );
        assert!(skipped(&deep).reason.contains("nested deeper than"));
    }

    #[test]
    fn indicator_properties_are_carried_over() {
        let extra = r#","valid_until":"2025-01-01T00:00:00Z","revoked":true,"confidence":85,
            "indicator_types":["malicious-activity","attribution"],"labels":["poison-ivy","attribution"]"#;
        let d = decode(&bundle_with("[domain-name:value = 'evil.example']", extra));
        let i = &d.indicators[0];
        assert!(i.revoked);
        assert_eq!(i.confidence, 85);
        assert_eq!(i.valid_until, Some(ts("2025-01-01T00:00:00Z")));
        assert_eq!(
            i.labels,
            vec!["malicious-activity", "attribution", "poison-ivy"]
        );
    }

    #[test]
    fn valid_from_defaults_to_created() {
        let b = bundle_with("[domain-name:value = 'evil.example']", "")
            .replace(r#","valid_from":"2024-03-01T12:00:00Z""#, "");
        assert_eq!(
            decode(&b).indicators[0].valid_from,
            ts("2024-03-01T10:00:00Z")
        );
    }

    #[test]
    fn revoked_indicators_are_kept_so_their_alerts_can_be_withdrawn() {
        let d = decode(&bundle_with(
            "[ipv4-addr:value = '1.2.3.4']",
            r#","revoked":true"#,
        ));
        assert!(d.indicators[0].revoked);
    }

    fn tlp_of(extra: &str, more_objects: &str) -> Tlp {
        let b = bundle_with("[ipv4-addr:value = '1.2.3.4']", extra).replacen(
            r#""objects":["#,
            &format!(r#""objects":[{more_objects}"#),
            1,
        );
        let d = decode(&b);
        assert!(d.skipped.is_empty(), "{:?}", d.skipped);
        d.indicators[0].tlp
    }

    fn refs(ids: &[&str]) -> String {
        format!(r#","object_marking_refs":{}"#, serde_json::json!(ids))
    }

    #[test]
    fn standard_tlp_marking_definitions_map_to_tlp() {
        let cases = [
            (
                "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
                Tlp::Clear,
            ),
            (
                "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
                Tlp::Green,
            ),
            (
                "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
                Tlp::Amber,
            ),
            (
                "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
                Tlp::Red,
            ),
            (
                "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
                Tlp::Clear,
            ),
            (
                "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
                Tlp::Green,
            ),
            (
                "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
                Tlp::Amber,
            ),
            (
                "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
                Tlp::AmberStrict,
            ),
            (
                "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
                Tlp::Red,
            ),
        ];
        for (id, tlp) in cases {
            assert_eq!(tlp_of(&refs(&[id]), ""), tlp, "{id}");
        }
    }

    #[test]
    fn marking_definitions_in_the_bundle_are_read() {
        let v1 = r#"{"type":"marking-definition","spec_version":"2.1","id":"marking-definition--00000000-0000-4000-8000-000000000001",
            "created":"2017-01-20T00:00:00.000Z","definition_type":"tlp","name":"TLP:GREEN","definition":{"tlp":"green"}},"#;
        assert_eq!(
            tlp_of(
                &refs(&["marking-definition--00000000-0000-4000-8000-000000000001"]),
                v1
            ),
            Tlp::Green
        );
        let v2 = r#"{"type":"marking-definition","spec_version":"2.1","id":"marking-definition--00000000-0000-4000-8000-000000000002",
            "created":"2022-10-01T00:00:00.000Z","name":"TLP:AMBER+STRICT","extensions":{
            "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d":{"extension_type":"property-extension","tlp_2_0":"amber+strict"}}},"#;
        assert_eq!(
            tlp_of(
                &refs(&["marking-definition--00000000-0000-4000-8000-000000000002"]),
                v2
            ),
            Tlp::AmberStrict
        );
        let by_name = r#"{"type":"marking-definition","id":"marking-definition--00000000-0000-4000-8000-000000000003","name":"TLP:RED"},"#;
        assert_eq!(
            tlp_of(
                &refs(&["marking-definition--00000000-0000-4000-8000-000000000003"]),
                by_name
            ),
            Tlp::Red
        );
        // A statement marking says nothing about TLP: the partner's default applies.
        let statement = r#"{"type":"marking-definition","id":"marking-definition--00000000-0000-4000-8000-000000000004",
            "definition_type":"statement","definition":{"statement":"Copyright 2024 Partner A"}},"#;
        assert_eq!(
            tlp_of(
                &refs(&["marking-definition--00000000-0000-4000-8000-000000000004"]),
                statement
            ),
            Tlp::Amber
        );
    }

    #[test]
    fn the_strictest_marking_wins() {
        let green = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da";
        let red = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1";
        let strict = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003";
        let clear = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487";
        assert_eq!(tlp_of(&refs(&[green, red, clear]), ""), Tlp::Red);
        assert_eq!(tlp_of(&refs(&[clear, strict, green]), ""), Tlp::AmberStrict);
        // A granular marking counts too.
        let granular = format!(
            r#"{},"granular_markings":[{{"marking_ref":"{red}","selectors":["pattern"]}}]"#,
            refs(&[green])
        );
        assert_eq!(tlp_of(&granular, ""), Tlp::Red);
        // An unresolvable reference may hide a restriction: it counts as the default (AMBER).
        assert_eq!(
            tlp_of(
                &refs(&[
                    green,
                    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ec"
                ]),
                ""
            ),
            Tlp::Amber
        );
        assert_eq!(
            tlp_of(&refs(&[red, "marking-definition--unknown"]), ""),
            Tlp::Red
        );
    }

    #[test]
    fn malformed_json_is_named() {
        let b = bundle_with("[ipv4-addr:value = '1.2.3.4']", "");
        let e = decode_err(&b[..b.len() / 2]);
        assert_eq!(e.code, ErrorCode::MalformedJson);
        assert_eq!(decode_err("not json").code, ErrorCode::MalformedJson);
        assert_eq!(decode_err("").code, ErrorCode::MalformedJson);
        let e = decode_bundle(b"{\"type\":\"bundle\xff\"}", &ctx()).expect_err("bad utf-8");
        assert_eq!(e.code, ErrorCode::InvalidUtf8);
    }

    #[test]
    fn a_non_bundle_is_rejected_with_the_field() {
        let e = decode_err("[1,2]");
        assert_eq!((e.code, e.field.as_deref()), (ErrorCode::WrongType, None));
        let e = decode_err(r#"{"objects":[]}"#);
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::MissingField, Some("type"))
        );
        let e = decode_err(r#"{"type":7,"objects":[]}"#);
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::WrongType, Some("type"))
        );
        let e = decode_err(
            r#"{"type":"indicator","id":"indicator--1","pattern":"[ipv4-addr:value = '1.2.3.4']"}"#,
        );
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::UnsupportedFormat, Some("type"))
        );
        let e = decode_err(r#"{"type":"bundle","objects":{"type":"indicator"}}"#);
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::WrongType, Some("objects"))
        );
        let e = decode_err(r#"{"type":"bundle","objects":[{"type":"identity"},"indicator"]}"#);
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::WrongType, Some("objects[1]"))
        );
        let e = decode_err(r#"{"type":"bundle","objects":[{"id":"x"}]}"#);
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::MissingField, Some("objects[0].type"))
        );
        let e = decode_err(r#"{"type":"bundle","objects":[{"type":["indicator"]}]}"#);
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::WrongType, Some("objects[0].type"))
        );
    }

    #[test]
    fn a_bundle_without_objects_or_indicators_yields_nothing() {
        assert_eq!(
            decode(r#"{"type":"bundle","id":"bundle--1"}"#),
            StixDecoded::default()
        );
        assert_eq!(
            decode(r#"{"type":"bundle","id":"bundle--1","objects":[]}"#),
            StixDecoded::default()
        );
    }

    #[test]
    fn wrong_properties_skip_the_indicator_and_name_the_field() {
        let p = "[ipv4-addr:value = '1.2.3.4']";
        let cases = [
            (
                r#","confidence":"high""#,
                ErrorCode::WrongType,
                "objects[0].confidence",
            ),
            (
                r#","confidence":170"#,
                ErrorCode::InvalidValue,
                "objects[0].confidence",
            ),
            (
                r#","revoked":"yes""#,
                ErrorCode::WrongType,
                "objects[0].revoked",
            ),
            (
                r#","labels":"apt""#,
                ErrorCode::WrongType,
                "objects[0].labels",
            ),
            (
                r#","labels":["ok",3]"#,
                ErrorCode::WrongType,
                "objects[0].labels[1]",
            ),
            (
                r#","labels":["bad\u202elabel"]"#,
                ErrorCode::InvalidValue,
                "objects[0].labels[0]",
            ),
            (
                r#","valid_until":"tomorrow""#,
                ErrorCode::InvalidValue,
                "objects[0].valid_until",
            ),
            (
                r#","valid_until":"2020-01-01T00:00:00Z""#,
                ErrorCode::InvalidValue,
                "objects[0].valid_until",
            ),
            (
                r#","object_marking_refs":"tlp""#,
                ErrorCode::WrongType,
                "objects[0].object_marking_refs",
            ),
            (
                r#","granular_markings":[7]"#,
                ErrorCode::WrongType,
                "objects[0].granular_markings[0]",
            ),
        ];
        for (extra, code, field) in cases {
            let d = decode(&bundle_with(p, extra));
            assert!(d.indicators.is_empty(), "{extra}");
            assert_eq!(d.skipped.len(), 1, "{extra}: {:?}", d.skipped);
            let s = &d.skipped[0];
            assert_eq!(
                (s.code, s.field.as_deref()),
                (code, Some(field)),
                "{extra}: {}",
                s.reason
            );
            assert_eq!(s.object_id, ID);
        }
        let b = bundle_with(p, "").replace(
            r#""pattern":"[ipv4-addr:value = '1.2.3.4']","#,
            r#""pattern":42,"#,
        );
        let s = &decode(&b).skipped[0];
        assert_eq!(
            (s.code, s.field.as_deref()),
            (ErrorCode::WrongType, Some("objects[0].pattern"))
        );
        let b = bundle_with(p, "").replace(r#""created":"2024-03-01T10:00:00.000Z","#, "");
        let s = &decode(&b).skipped[0];
        assert_eq!(
            (s.code, s.field.as_deref()),
            (ErrorCode::MissingField, Some("objects[0].created"))
        );
        let b = bundle_with(p, "").replace(ID, "indicator--\\u0007bell");
        let s = &decode(&b).skipped[0];
        assert_eq!(
            (s.code, s.field.as_deref()),
            (ErrorCode::InvalidValue, Some("objects[0].id"))
        );
        assert_eq!(s.object_id, "objects[0]");
    }

    #[test]
    fn an_error_about_the_whole_object_is_reported_once() {
        let d = decode(&bundle_with(
            "[ipv4-addr:value = '1.2.3.4' OR ipv4-addr:value = '5.6.7.8']",
            r#","valid_until":"2020-01-01T00:00:00Z""#,
        ));
        assert_eq!(d.skipped.len(), 1, "{:?}", d.skipped);
    }

    #[test]
    fn good_and_bad_indicators_in_one_bundle() {
        let b = r#"{"type":"bundle","id":"bundle--2","objects":[
            {"type":"indicator","id":"indicator--a","created":"2024-01-01T00:00:00Z","pattern":"[ipv4-addr:value = '1.2.3.4']"},
            {"type":"indicator","id":"indicator--b","created":"2024-01-01T00:00:00Z","pattern":"[process:name = 'x']"},
            {"type":"malware","id":"malware--c","name":"x","is_family":true},
            {"type":"indicator","id":"indicator--d","created":"2024-01-01T00:00:00Z","pattern":"[domain-name:value = 'evil.example']"}]}"#;
        let d = decode(b);
        let ids: Vec<_> = d.indicators.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, vec!["indicator--a", "indicator--d"]);
        assert_eq!(d.skipped.len(), 1);
        assert_eq!(d.skipped[0].object_id, "indicator--b");
    }

    #[test]
    fn an_invalid_partner_configuration_is_named() {
        let mut c = ctx();
        c.owner = "partner a".into();
        let e = decode_bundle(b"{}", &c).expect_err("invalid owner");
        assert_eq!(e.field.as_deref(), Some("context.owner"));
    }

    // ---- The public OASIS examples in /work/shared/data/stix ----

    fn example_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/stix")
    }

    fn example(name: &str) -> Result<StixDecoded, DecodeError> {
        let bytes = std::fs::read(example_dir().join(name)).expect("the example file is readable");
        decode_bundle(&bytes, &ctx())
    }

    fn values(d: &StixDecoded) -> Vec<(&str, IndicatorKind, &str)> {
        d.indicators
            .iter()
            .map(|i| (i.id.as_str(), i.kind, i.value.as_str()))
            .collect()
    }

    /// Every example file is listed here with what it must decode to; a new file fails this
    /// test until someone says what it holds.
    #[test]
    fn every_example_bundle_decodes_as_expected() {
        let mut names: Vec<String> = std::fs::read_dir(example_dir())
            .expect("the example directory exists")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect();
        names.sort();
        let checked = [
            "apt1.json",
            "indicator-for-c2-ip-address.json",
            "indicator-to-campaign-relationship.json",
            "indicators-for-C2-with-COA.json",
            "infrastructure.json",
            "interop-objectmarking-test.json",
            "malicious-email-indicator-with-attachment.json",
            "poisonivy.json",
        ];
        assert_eq!(names, checked, "describe every example file below");
        for name in checked {
            check_example(name);
        }
    }

    fn check_example(name: &str) {
        use IndicatorKind::*;
        match name {
            "indicator-for-c2-ip-address.json" => {
                let d = example(name).expect("decodes");
                assert_eq!(
                    values(&d),
                    vec![(
                        "indicator--33fe3b22-0201-47cf-85d0-97c02164528d",
                        Ipv4,
                        "10.0.0.0"
                    )]
                );
                let i = &d.indicators[0];
                assert_eq!(i.labels, vec!["malicious-activity"]);
                assert_eq!(i.created, ts("2014-05-08T09:00:00Z"));
                assert_eq!(i.valid_from, ts("2014-05-08T09:00:00Z"));
                assert_eq!(i.tlp, Tlp::Amber, "unmarked: the partner's default");
                assert!(d.skipped.is_empty());
            }
            "indicator-to-campaign-relationship.json" => {
                // The pattern has blanks inside the brackets: "[ ipv4-addr:value = '10.0.0.0' ]".
                let d = example(name).expect("decodes");
                assert_eq!(
                    values(&d),
                    vec![(
                        "indicator--c43a0a05-e8d2-4f64-ae37-3f3fb153f8d9",
                        Ipv4,
                        "10.0.0.0"
                    )]
                );
                assert_eq!(d.indicators[0].valid_from, ts("2014-09-09T19:58:39.609Z"));
            }
            "indicators-for-C2-with-COA.json" => {
                let d = example(name).expect("decodes");
                assert_eq!(
                    values(&d),
                    vec![
                        (
                            "indicator--53fe3b22-0201-47cf-85d0-97c02164528d",
                            Ipv4,
                            "10.0.0.0"
                        ),
                        (
                            "indicator--a932fcc6-e032-476c-826f-cb970a5a1ade",
                            Sha256,
                            "ef537f25c895bfa782526529a9b63d97aa631564d5d789c2b765448c8635fb6c"
                        ),
                    ]
                );
                assert!(d.skipped.is_empty());
            }
            "apt1.json" => {
                // 12 indicators: 4 CIDRs, 3 domains, 3 MD5s; 2 x509 patterns use AND.
                let d = example(name).expect("decodes");
                let v = values(&d);
                assert_eq!(v.len(), 10, "{v:?}");
                assert!(v.contains(&(
                    "indicator--031778a4-057f-48e6-9db9-c8d72b81ccd5",
                    Cidr,
                    "223.166.0.0/15"
                )));
                assert!(v.contains(&(
                    "indicator--da1d061b-2bc9-467a-b16f-8d14f468e1f0",
                    Cidr,
                    "58.246.0.0/15"
                )));
                assert!(v.contains(&(
                    "indicator--2173d108-5714-42fd-8213-4f3790259fda",
                    Cidr,
                    "112.64.0.0/15"
                )));
                assert!(v.contains(&(
                    "indicator--8ce03314-dfea-4498-ac9b-136e41ab00e4",
                    Cidr,
                    "139.226.0.0/15"
                )));
                assert!(v.contains(&(
                    "indicator--3f3ff9f1-bb4e-4392-89e5-1991179042ba",
                    Domain,
                    "hugesoft.org"
                )));
                assert!(v.contains(&(
                    "indicator--8390fd29-24ed-45d4-84d7-c5e5feaf195d",
                    Domain,
                    "arrowservice.net"
                )));
                assert!(v.contains(&(
                    "indicator--1002c58e-cbde-4930-b5ee-490037fd4f7e",
                    Domain,
                    "msnhome.org"
                )));
                assert!(v.contains(&(
                    "indicator--8d12f44f-8ac0-4b12-8b4a-3699ca8c9691",
                    Md5,
                    "001dd76872d80801692ff942308c64e6"
                )));
                assert!(v.contains(&(
                    "indicator--745e1537-b4f3-49da-9f64-df6b1b5df190",
                    Md5,
                    "002325a0a67fded0381b5648d7fe9b8e"
                )));
                assert!(v.contains(&(
                    "indicator--1dbe6ed0-c305-458f-9cce-f83c678f5afd",
                    Md5,
                    "00dbb9e1c09dbdafb360f3163ba5a3de"
                )));
                let skipped: Vec<_> = d.skipped.iter().map(|s| s.object_id.as_str()).collect();
                assert_eq!(
                    skipped,
                    vec![
                        "indicator--b3b6b540-d838-41e2-853b-005056c00008",
                        "indicator--b3b7035e-d838-41e2-8d38-005056c00008"
                    ]
                );
                for s in &d.skipped {
                    assert_eq!(s.code, ErrorCode::UnsupportedPattern);
                    assert!(
                        s.reason
                            .starts_with("unsupported pattern: AND in \"[x509-certificate:issuer"),
                        "{}",
                        s.reason
                    );
                }
            }
            "poisonivy.json" => {
                // 25 indicators, 67 comparisons: domains OR'ed with the addresses they resolved to.
                let d = example(name).expect("decodes");
                let v = values(&d);
                assert_eq!(v.len(), 64, "{v:?}");
                assert!(v.contains(&(
                    "indicator--e8094b09-7df4-4b13-b207-1e27af3c4bde",
                    Ipv4,
                    "219.76.208.163"
                )));
                assert!(v.contains(&(
                    "indicator--329ae6e9-25bd-49e8-89d1-aae4ca52e4a7:0",
                    Domain,
                    "www.webserver.dynssl.com"
                )));
                assert!(v.contains(&(
                    "indicator--329ae6e9-25bd-49e8-89d1-aae4ca52e4a7:5",
                    Ipv4,
                    "202.65.222.45"
                )));
                assert!(v.contains(&(
                    "indicator--8da68996-f175-4ae0-bd74-aad4913873b8:0",
                    Domain,
                    "microsofta.byinter.net"
                )));
                assert!(v.contains(&(
                    "indicator--8da68996-f175-4ae0-bd74-aad4913873b8:10",
                    Ipv4,
                    "98.126.148.114"
                )));
                assert!(v.contains(&(
                    "indicator--fead5c52-9533-405c-b822-a034092a1ba8",
                    Domain,
                    "send.have8000.com"
                )));
                assert!(v.contains(&(
                    "indicator--4e4c4ad7-4909-456a-b6fa-e24a6f682a40:1",
                    Ipv4,
                    "60.10.1.115"
                )));
                let first = &d.indicators[0];
                assert_eq!(first.labels, vec!["malicious-activity", "attribution"]);
                // "domain autuo.xicp.net" is not a domain name; the file:name launchers are
                // not evaluated.
                let s: Vec<_> = d
                    .skipped
                    .iter()
                    .map(|s| (s.object_id.as_str(), s.code))
                    .collect();
                assert_eq!(
                    s,
                    vec![
                        (
                            "indicator--4e4c4ad7-4909-456a-b6fa-e24a6f682a40",
                            ErrorCode::InvalidValue
                        ),
                        (
                            "indicator--137acf67-cedc-4a07-8719-72759174de3a",
                            ErrorCode::UnsupportedPattern
                        ),
                        (
                            "indicator--0b71628d-31dd-4eb8-baee-39f19c0a14b0",
                            ErrorCode::UnsupportedPattern
                        ),
                    ]
                );
                assert!(d.skipped[0].reason.contains("\"domain autuo.xicp.net\""));
                assert!(d.skipped[0].reason.ends_with("(comparison 0)"));
                assert!(
                    d.skipped[1]
                        .reason
                        .starts_with("unsupported pattern: object path file:name in ")
                );
            }
            "malicious-email-indicator-with-attachment.json" => {
                // Both indicators are regular expressions over e-mail properties.
                let d = example(name).expect("decodes");
                assert!(d.indicators.is_empty());
                let s: Vec<_> = d
                    .skipped
                    .iter()
                    .map(|s| (s.object_id.as_str(), s.reason.as_str()))
                    .collect();
                assert_eq!(s.len(), 2);
                assert_eq!(s[0].0, "indicator--8cf9236f-1b96-493d-98be-0c1c1e8b62d7");
                assert!(s[0].1.starts_with(
                    "unsupported pattern: operator MATCHES and object path email-message:subject in "
                ));
                assert_eq!(s[1].0, "indicator--2e17f6fe-3a4d-438a-911a-e509ba1b9933");
                assert!(s[1].1.starts_with(
                    "unsupported pattern: operator MATCHES and object path email-message:body_multipart[*].body_raw_ref.name in "
                ));
            }
            "infrastructure.json" => {
                // No indicator object: the bare ipv4-addr and domain-name observables are not
                // intelligence to match, so the bundle yields nothing ("no indicator").
                let d = example(name).expect("decodes");
                assert_eq!(d, StixDecoded::default());
            }
            "interop-objectmarking-test.json" => {
                // A lone campaign object, not a bundle.
                let e = example(name).expect_err("not a bundle");
                assert_eq!(
                    (e.code, e.field.as_deref()),
                    (ErrorCode::UnsupportedFormat, Some("type"))
                );
                assert!(e.detail.contains("\"campaign\""));
            }
            other => panic!("{other} is not described"),
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_bundle(&bytes, &ctx());
        }

        #[test]
        fn arbitrary_patterns_never_panic(p in ".{0,200}") {
            let _ = pattern::evaluable(&p);
            let _ = decode_bundle(bundle_with(&p, "").as_bytes(), &ctx());
        }

        #[test]
        fn pattern_like_strings_never_panic(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("["), Just("]"), Just("("), Just(")"), Just(" OR "), Just(" AND "),
                    Just(" FOLLOWEDBY "), Just(" WITHIN 5 SECONDS"), Just(" = "), Just(" != "),
                    Just(" IN "), Just(" NOT "), Just("ipv4-addr:value"), Just("file:hashes.'SHA-256'"),
                    Just("'1.2.3.4'"), Just("'a\\'b'"), Just("t'2020-01-01T00:00:00Z'"), Just("[*]"),
                    Just("."), Just(":"), Just(","), Just("'"), Just("\\"), Just("5"), Just("-"),
                ],
                0..40,
            )
        ) {
            let p: String = parts.concat();
            let _ = pattern::evaluable(&p);
            let _ = decode_bundle(bundle_with(&p, "").as_bytes(), &ctx());
        }

        /// Oracle: an OR of address comparisons yields exactly those addresses, in order.
        #[test]
        fn an_or_of_addresses_yields_each_address(
            addrs in proptest::collection::vec(any::<[u8; 4]>(), 1..12),
            bracket_each in any::<bool>(),
        ) {
            let ips: Vec<String> = addrs.iter().map(|a| Ipv4Addr::from(*a).to_string()).collect();
            let cmps: Vec<String> = ips.iter().map(|ip| format!("ipv4-addr:value = '{ip}'")).collect();
            let p = if bracket_each {
                cmps.iter().map(|c| format!("[{c}]")).collect::<Vec<_>>().join(" OR ")
            } else {
                format!("[{}]", cmps.join(" OR "))
            };
            let d = decode(&bundle_with(&p, ""));
            prop_assert!(d.skipped.is_empty());
            let got: Vec<&str> = d.indicators.iter().map(|i| i.value.as_str()).collect();
            prop_assert_eq!(got, ips.iter().map(String::as_str).collect::<Vec<_>>());
            for (n, i) in d.indicators.iter().enumerate() {
                let want = if ips.len() == 1 { ID.to_string() } else { format!("{ID}:{n}") };
                prop_assert_eq!(&i.id, &want);
                prop_assert_eq!(i.validate(), Ok(()));
            }
        }
    }
}
