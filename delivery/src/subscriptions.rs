//! Subscriptions: who receives what, from one TOML file.
//!
//! Secrets are never inline: each comes from an environment variable
//! (`secret_env = "NAME"`) or a file (`secret_file = "path"`, relative to the
//! config file's directory).

use std::path::{Path, PathBuf};

use schemas::sharing::{Interest, Policy, Recipient, RecipientKind};
use schemas::{IndicatorKind, Severity, Tlp};
use serde::Deserialize;

use crate::webhook::Secret;

/// Why the subscriptions could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is invalid or has unknown fields.
    #[error("invalid subscriptions in {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
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
                    .map_err(|e| err(format!("cannot read {}: {e}", path.display())))
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
    id: String,
    country: String,
    #[serde(default)]
    organisation: Option<String>,
    endpoint: String,
    #[serde(default)]
    secret_env: Option<String>,
    #[serde(default)]
    secret_file: Option<PathBuf>,
    clearance: Tlp,
    personal_data: bool,
    #[serde(default)]
    drill: bool,
    #[serde(default)]
    countries: Vec<String>,
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
    id: String,
    #[serde(default)]
    organisation: Option<String>,
    feedback_endpoint: String,
    #[serde(default)]
    secret_env: Option<String>,
    #[serde(default)]
    secret_file: Option<PathBuf>,
    feedback_min_count: u64,
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
        Self::parse(&text, base).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
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
        let raw: RawFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
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
            if !ids.insert(b.id.clone()) {
                return Err(ConfigError::DuplicateId(b.id));
            }
            bureaus.push(Bureau {
                secret: secret(
                    &b.id,
                    &SecretSource {
                        secret_env: b.secret_env.clone(),
                        secret_file: b.secret_file.clone(),
                    },
                )?,
                recipient: Recipient {
                    organisation: b.organisation.unwrap_or_else(|| b.id.clone()),
                    id: b.id,
                    kind: RecipientKind::Bureau,
                    country: Some(b.country.clone()),
                    clearance: b.clearance,
                    personal_data: b.personal_data,
                    drill: b.drill,
                    interest: Interest {
                        countries: b.countries,
                        kinds: b.kinds,
                        min_severity: b.min_severity,
                    },
                },
                country: b.country,
                endpoint: b.endpoint,
                max_in_flight: b.max_in_flight.max(1),
            });
        }
        let mut partners = Vec::new();
        for p in raw.partner {
            if !ids.insert(p.id.clone()) {
                return Err(ConfigError::DuplicateId(p.id));
            }
            partners.push(Partner {
                secret: secret(
                    &p.id,
                    &SecretSource {
                        secret_env: p.secret_env.clone(),
                        secret_file: p.secret_file.clone(),
                    },
                )?,
                organisation: p.organisation.unwrap_or_else(|| p.id.clone()),
                id: p.id,
                feedback_endpoint: p.feedback_endpoint,
                feedback_min_count: p.feedback_min_count.max(1),
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
