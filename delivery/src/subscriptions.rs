//! Subscriptions: who receives what, from one TOML file.
//!
//! Secrets are never inline: each comes from an environment variable
//! (`secret_env = "NAME"`) or a file (`secret_file = "path"`, relative to the
//! config file's directory). A secret written inline is refused by its field and
//! line, and no error quotes the file. Endpoints must be https (plain http only to
//! loopback), countries ISO 3166-1 alpha-2 codes.

use std::path::{Path, PathBuf};

use schemas::sharing::{Interest, Policy, Recipient, RecipientKind};
use schemas::{IndicatorKind, Severity, Tlp};
use serde::Deserialize;
use toml::Spanned;

use crate::webhook::Secret;

/// Why the subscriptions could not be loaded.
///
/// No message ever contains secret material: an inline secret is named by its field
/// and line, never echoed, and TOML errors are reported without the offending line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is invalid or has unknown fields.
    #[error("invalid subscriptions in {}{}: {message}", path.display(), at_line(*line))]
    Parse {
        /// The file.
        path: PathBuf,
        /// The line (1-based), when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// A secret is written in the file itself.
    #[error(
        "{}{}: `{field}` holds a secret inline; secrets are never written in the subscriptions \
         file: put it in a file named by `secret_file = \"path\"` or in an environment variable \
         named by `secret_env = \"NAME\"` (for pseudonym_key: `pseudonym_key = {{ secret_env = \"NAME\" }}`)",
        path.display(), at_line(Some(*line))
    )]
    InlineSecret {
        /// The file.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// The field, e.g. `bureau[0].secret`.
        field: String,
    },
    /// A value parsed but is not acceptable (an endpoint that is not https, a country
    /// that is not an ISO code…).
    #[error("invalid subscriptions in {}{}: {error}", path.display(), at_line(Some(*line)))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// The field and what is wrong with it.
        error: schemas::validate::ValidationError,
    },
    /// A secret is missing or malformed.
    #[error("secret of {owner}: {message}")]
    Secret {
        /// Which bureau or partner (or the pseudonym key).
        owner: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// Two subscribers share an id.
    #[error("subscriber id {0:?} appears twice; ids must be unique")]
    DuplicateId(String),
}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(" line {l}")).unwrap_or_default()
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// A TOML error without the source line it would otherwise quote (it may hold a secret).
fn parse_error(origin: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    ConfigError::Parse {
        path: origin.to_path_buf(),
        line: e.span().map(|s| line_of(text, s.start)),
        message: e.message().trim_end().to_string(),
    }
}

/// Keys that name secret material. `secret_env` and `secret_file` only say where it is.
fn names_a_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k != "secret_env"
        && k != "secret_file"
        && (k.contains("secret")
            || k.contains("password")
            || k.contains("token")
            || k == "key"
            || k.ends_with("_key"))
}

/// An environment variable name as secrets are named: `FUSION_SECRET_NCB_FR`. Upper case
/// only, so that base64 secret material pasted here is refused rather than echoed in a
/// "variable … is not set" message.
fn is_variable_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Refuses secret material written in the file, before anything could echo it: a value
/// under a key that names a secret (`secret = …`, `pseudonym_key = "…"`), any value
/// that is a webhook secret (`whsec_…`), and a `secret_env` that is not a variable name.
fn refuse_inline_secrets(text: &str, origin: &Path) -> Result<(), ConfigError> {
    use toml::de::{DeTable, DeValue};

    fn value(
        key: &str,
        field: &str,
        v: &toml::Spanned<DeValue<'_>>,
        text: &str,
        origin: &Path,
    ) -> Result<(), ConfigError> {
        let inline = |line| ConfigError::InlineSecret {
            path: origin.to_path_buf(),
            line,
            field: field.to_string(),
        };
        let line = line_of(text, v.span().start);
        match v.get_ref() {
            DeValue::Table(t) => table(t, field, text, origin),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    value(key, &format!("{field}[{i}]"), item, text, origin)?;
                }
                Ok(())
            }
            DeValue::String(s) if s.trim_start().starts_with("whsec_") => Err(inline(line)),
            DeValue::String(s) if key == "secret_env" && !is_variable_name(s) => {
                Err(ConfigError::Invalid {
                    path: origin.to_path_buf(),
                    line,
                    error: schemas::validate::ValidationError::new(
                        field,
                        "must be the name of an environment variable (upper-case letters, \
                         digits and _, not starting with a digit), never the secret itself \
                         (the value is not shown)",
                    ),
                })
            }
            _ if names_a_secret(key) => Err(inline(line)),
            _ => Ok(()),
        }
    }

    fn table(t: &DeTable<'_>, prefix: &str, text: &str, origin: &Path) -> Result<(), ConfigError> {
        for (k, v) in t.iter() {
            let key: &str = k.get_ref();
            let field = if prefix.is_empty() {
                key.to_string()
            } else {
                format!("{prefix}.{key}")
            };
            value(key, &field, v, text, origin)?;
        }
        Ok(())
    }

    let doc = DeTable::parse(text).map_err(|e| parse_error(origin, text, &e))?;
    table(doc.get_ref(), "", text, origin)
}

/// Where a webhook may point: https anywhere, plain http only to this machine (drills
/// and tests), never another scheme. A URL with credentials is refused without echoing it.
fn check_endpoint(field: &str, value: &str) -> Result<(), schemas::validate::ValidationError> {
    use schemas::validate::ValidationError;
    let url = url::Url::parse(value).map_err(|e| {
        ValidationError::new(
            field,
            format!("{value:?} is not a URL ({e}); write e.g. \"https://bureau.example/webhook\""),
        )
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ValidationError::new(
            field,
            "carries credentials in the URL (the value is not shown); remove them: \
             messages are signed with the secret from secret_env or secret_file",
        ));
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(ValidationError::new(
            field,
            format!(
                "{value:?} is plain http to another machine; use https (plain http is allowed only to 127.0.0.1 or localhost, for drills and tests)"
            ),
        )),
        _ => Err(ValidationError::new(
            field,
            format!("{value:?} is not an https URL; webhooks go to https://… endpoints only"),
        )),
    }
}

/// An ISO 3166-1 alpha-2 code, assigned: `schemas::validate::country` checks the shape,
/// [`schemas::validate::assigned_country`] that the code names a country.
fn check_country(field: &str, value: &str) -> Result<(), schemas::validate::ValidationError> {
    schemas::validate::country(field, value)?;
    schemas::validate::assigned_country(field, value)
}

/// Where a secret comes from (exactly one of the two).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// Environment variable holding the secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// File holding the secret (relative paths are relative to the config file).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
}

impl SecretSource {
    fn read(
        &self,
        owner: &str,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, ConfigError> {
        let err = |message: String| ConfigError::Secret {
            owner: owner.to_string(),
            message,
        };
        match (&self.secret_env, &self.secret_file) {
            (Some(var), None) => env(var)
                .ok_or_else(|| err(format!("environment variable {var} is not set; export it"))),
            (None, Some(file)) => {
                let path = base.join(file);
                std::fs::read_to_string(&path)
                    .map(|s| s.trim().to_string())
                    .map_err(|e| match e.kind() {
                        // A secret pasted where its path goes names no file: not shown.
                        std::io::ErrorKind::NotFound => err(
                            "the file named by secret_file does not exist (relative paths are \
                             relative to the subscriptions file; the path is not shown, in \
                             case it is the secret itself)"
                                .to_string(),
                        ),
                        _ => err(format!("cannot read {}: {e}", path.display())),
                    })
            }
            _ => Err(err(
                "give exactly one of secret_env or secret_file (never the secret inline)"
                    .to_string(),
            )),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    pseudonym_key: SecretSource,
    #[serde(default)]
    bureau: Vec<RawBureau>,
    #[serde(default)]
    partner: Vec<RawPartner>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBureau {
    id: Spanned<String>,
    country: Spanned<String>,
    #[serde(default)]
    organisation: Option<String>,
    endpoint: Spanned<String>,
    #[serde(default)]
    secret_env: Option<String>,
    #[serde(default)]
    secret_file: Option<PathBuf>,
    clearance: Tlp,
    personal_data: bool,
    #[serde(default)]
    drill: bool,
    #[serde(default)]
    countries: Vec<Spanned<String>>,
    #[serde(default)]
    kinds: Vec<IndicatorKind>,
    #[serde(default)]
    min_severity: Option<Severity>,
    #[serde(default = "default_max_in_flight")]
    max_in_flight: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPartner {
    id: Spanned<String>,
    #[serde(default)]
    organisation: Option<String>,
    feedback_endpoint: Spanned<String>,
    #[serde(default)]
    secret_env: Option<String>,
    #[serde(default)]
    secret_file: Option<PathBuf>,
    feedback_min_count: u64,
    #[serde(default)]
    drill: bool,
}

fn default_max_in_flight() -> usize {
    4
}

/// A national bureau's subscription.
#[derive(Debug, Clone)]
pub struct Bureau {
    /// As the sharing policy sees it.
    pub recipient: Recipient,
    /// ISO 3166 alpha-2 country.
    pub country: String,
    /// Webhook URL.
    pub endpoint: String,
    /// Signing secret.
    pub secret: Secret,
    /// Most deliveries in flight at once to this endpoint.
    pub max_in_flight: usize,
}

/// A partner that gets feedback on its own indicators.
#[derive(Debug, Clone)]
pub struct Partner {
    /// Partner id (the owner / source id on its indicators).
    pub id: String,
    /// Its organisation.
    pub organisation: String,
    /// Feedback webhook URL.
    pub feedback_endpoint: String,
    /// Signing secret.
    pub secret: Secret,
    /// Feedback only once an indicator has at least this many sightings.
    pub feedback_min_count: u64,
    /// A drill endpoint: only a drill may feed back to it (and a drill feeds back to
    /// drill endpoints only).
    pub drill: bool,
}

/// Every subscription and the pseudonymisation policy.
#[derive(Debug, Clone)]
pub struct Subscriptions {
    /// Bureaus, in file order.
    pub bureaus: Vec<Bureau>,
    /// Partners, in file order.
    pub partners: Vec<Partner>,
    /// The pseudonymisation policy.
    pub policy: Policy,
}

impl Subscriptions {
    /// Loads and checks a subscriptions file, reading every secret.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse_from(&text, base, &|var| std::env::var(var).ok(), path)
    }

    /// Parses subscriptions from TOML text; relative secret files are relative to `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, ConfigError> {
        Self::parse_with_env(text, base, &|var| std::env::var(var).ok())
    }

    /// Like [`Subscriptions::parse`], reading `secret_env` variables through `env`.
    pub fn parse_with_env(
        text: &str,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Self::parse_from(text, base, env, Path::new("the subscriptions"))
    }

    fn parse_from(
        text: &str,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        origin: &Path,
    ) -> Result<Self, ConfigError> {
        // First, before any error could quote it: no secret material in the file.
        refuse_inline_secrets(text, origin)?;
        let raw: RawFile = toml::from_str(text).map_err(|e| parse_error(origin, text, &e))?;
        let check = |span: std::ops::Range<usize>,
                     r: Result<(), schemas::validate::ValidationError>|
         -> Result<(), ConfigError> {
            r.map_err(|error| ConfigError::Invalid {
                path: origin.to_path_buf(),
                line: line_of(text, span.start),
                error,
            })
        };
        for (i, b) in raw.bureau.iter().enumerate() {
            let f = |name: &str| format!("bureau[{i}].{name}");
            check(b.id.span(), schemas::validate::id(&f("id"), b.id.get_ref()))?;
            check(
                b.country.span(),
                check_country(&f("country"), b.country.get_ref()),
            )?;
            check(
                b.endpoint.span(),
                check_endpoint(&f("endpoint"), b.endpoint.get_ref()),
            )?;
            for (j, c) in b.countries.iter().enumerate() {
                check(
                    c.span(),
                    check_country(&format!("bureau[{i}].countries[{j}]"), c.get_ref()),
                )?;
            }
        }
        for (i, p) in raw.partner.iter().enumerate() {
            let f = |name: &str| format!("partner[{i}].{name}");
            check(p.id.span(), schemas::validate::id(&f("id"), p.id.get_ref()))?;
            check(
                p.feedback_endpoint.span(),
                check_endpoint(&f("feedback_endpoint"), p.feedback_endpoint.get_ref()),
            )?;
        }
        let key = raw.pseudonym_key.read("pseudonym_key", base, env)?;
        if key.len() < 16 {
            return Err(ConfigError::Secret {
                owner: "pseudonym_key".to_string(),
                message: "must be at least 16 bytes".to_string(),
            });
        }
        let secret = |owner: &str, src: &SecretSource| -> Result<Secret, ConfigError> {
            Secret::parse(&src.read(owner, base, env)?).map_err(|e| ConfigError::Secret {
                owner: owner.to_string(),
                message: e.to_string(),
            })
        };
        let mut ids = std::collections::BTreeSet::new();
        let mut bureaus = Vec::new();
        for b in raw.bureau {
            let id = b.id.into_inner();
            if !ids.insert(id.clone()) {
                return Err(ConfigError::DuplicateId(id));
            }
            let country = b.country.into_inner();
            bureaus.push(Bureau {
                secret: secret(
                    &id,
                    &SecretSource {
                        secret_env: b.secret_env.clone(),
                        secret_file: b.secret_file.clone(),
                    },
                )?,
                recipient: Recipient {
                    organisation: b.organisation.unwrap_or_else(|| id.clone()),
                    id,
                    kind: RecipientKind::Bureau,
                    country: Some(country.clone()),
                    clearance: b.clearance,
                    personal_data: b.personal_data,
                    drill: b.drill,
                    interest: Interest {
                        countries: b.countries.into_iter().map(Spanned::into_inner).collect(),
                        kinds: b.kinds,
                        min_severity: b.min_severity,
                    },
                },
                country,
                endpoint: b.endpoint.into_inner(),
                max_in_flight: b.max_in_flight.max(1),
            });
        }
        let mut partners = Vec::new();
        for p in raw.partner {
            let id = p.id.into_inner();
            if !ids.insert(id.clone()) {
                return Err(ConfigError::DuplicateId(id));
            }
            partners.push(Partner {
                secret: secret(
                    &id,
                    &SecretSource {
                        secret_env: p.secret_env.clone(),
                        secret_file: p.secret_file.clone(),
                    },
                )?,
                organisation: p.organisation.unwrap_or_else(|| id.clone()),
                id,
                feedback_endpoint: p.feedback_endpoint.into_inner(),
                feedback_min_count: p.feedback_min_count.max(1),
                drill: p.drill,
            });
        }
        Ok(Self {
            bureaus,
            partners,
            policy: Policy::new(key.into_bytes()),
        })
    }

    /// The bureau with this id.
    pub fn bureau(&self, id: &str) -> Option<&Bureau> {
        self.bureaus.iter().find(|b| b.recipient.id == id)
    }
}
