//! Officers and their tokens: the officers file, the only place tokens are known, and
//! only as SHA-256 hashes.
//!
//! ```toml
//! [[officer]]
//! name = "alice"
//! center = "Lyon"
//! token_sha256 = "…"            # `fusion officer add` prints the token once
//! added = "2026-07-01T08:00:00Z"
//! revoked = "2026-07-02T08:00:00Z"  # once revoked, the token is refused
//!
//! [[center]]                    # optional: how the egress rule sees a center's officers
//! name = "Lyon"
//! recipient = "desk-lyon"       # the id owners name in their sharing lists
//! clearance = "RED"             # highest TLP (default RED: the marking decides)
//! personal_data = true          # victims and accounts in clear (default false)
//! ```
//!
//! A running desk reads the file again whenever it changes, so `fusion officer revoke`
//! takes effect on the next request.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use jiff::Timestamp;
use schemas::marking::Tlp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Why the officers file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OfficersError {
    /// Reading or writing failed.
    #[error("cannot {what} the officers file {path}: {source}")]
    Io {
        /// read or write.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("the officers file {path} is not valid: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A command cannot be carried out.
    #[error("{0}")]
    Refused(String),
}

/// One officer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfficerEntry {
    /// The officer's name (their id in actions).
    pub name: String,
    /// The center the officer belongs to, as the roster writes it.
    pub center: String,
    /// SHA-256 of the token, hex.
    pub token_sha256: String,
    /// When the officer was added.
    pub added: Timestamp,
    /// When the token was revoked, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Timestamp>,
}

/// How the egress rule sees a center's officers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CenterEntry {
    /// The center, as the roster writes it.
    pub name: String,
    /// The recipient id owners name in their sharing lists (default `desk-<center>`).
    #[serde(default)]
    pub recipient: Option<String>,
    /// The highest TLP its officers may see (default RED: the markings decide).
    #[serde(default)]
    pub clearance: Option<Tlp>,
    /// Whether its officers see personal data in clear (default false: pseudonyms).
    #[serde(default)]
    pub personal_data: bool,
}

/// The officers file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfficersFile {
    /// Officers, in the order they were added.
    #[serde(default, rename = "officer")]
    pub officers: Vec<OfficerEntry>,
    /// Per-center egress settings.
    #[serde(default, rename = "center")]
    pub centers: Vec<CenterEntry>,
}

/// SHA-256 of a token, hex.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// A new random token: 32 random bytes, hex, with a recognisable prefix.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("fdk_{}", hex::encode(bytes))
}

/// Equality that takes as long whatever the first difference (for hashes).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl OfficersFile {
    /// Reads `path`; a missing file is an empty one.
    pub fn load(path: &Path) -> Result<Self, OfficersError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(OfficersError::Io {
                    what: "read",
                    path: path.into(),
                    source,
                });
            }
        };
        // Not `e.to_string()`: that quotes the offending line, which may hold a token.
        toml::from_str(&text).map_err(|e| OfficersError::Invalid {
            path: path.into(),
            reason: match e.span() {
                Some(s) => format!(
                    "line {}: {}",
                    text.get(..s.start).map_or(0, |t| t.matches('\n').count()) + 1,
                    e.message().trim_end()
                ),
                None => e.message().trim_end().to_string(),
            },
        })
    }

    /// Writes the file atomically (a new file renamed over the old one), readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), OfficersError> {
        let io = |source| OfficersError::Io {
            what: "write",
            path: path.into(),
            source,
        };
        let mut text = String::from(
            "# Duty-desk officers. Tokens are stored only as SHA-256 hashes; `fusion officer add`\n\
             # prints a new token once, `fusion officer revoke` refuses it from then on.\n\n",
        );
        text.push_str(&toml::to_string(self).map_err(|e| OfficersError::Invalid {
            path: path.into(),
            reason: e.to_string(),
        })?);
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Adds `name` of `center` with a new token, returned (it is stored only as a hash).
    /// A revoked name may be added again; an active one may not.
    pub fn add(
        &mut self,
        name: &str,
        center: &str,
        now: Timestamp,
    ) -> Result<String, OfficersError> {
        if !valid_name(name) {
            return Err(OfficersError::Refused(format!(
                "{name:?} is not a valid officer name: use 1 to 64 letters, digits, '.', '_' or '-'"
            )));
        }
        if self
            .officers
            .iter()
            .any(|o| o.name == name && o.revoked.is_none())
        {
            return Err(OfficersError::Refused(format!(
                "officer {name} already exists; revoke the old token first (fusion officer revoke {name})"
            )));
        }
        self.officers.retain(|o| o.name != name);
        let token = new_token();
        self.officers.push(OfficerEntry {
            name: name.to_string(),
            center: center.to_string(),
            token_sha256: token_hash(&token),
            added: now,
            revoked: None,
        });
        Ok(token)
    }

    /// Revokes `name`'s token.
    pub fn revoke(&mut self, name: &str, now: Timestamp) -> Result<(), OfficersError> {
        match self
            .officers
            .iter_mut()
            .find(|o| o.name == name && o.revoked.is_none())
        {
            Some(o) => {
                o.revoked = Some(now);
                Ok(())
            }
            None => Err(OfficersError::Refused(format!(
                "no active officer {name} (fusion officer list shows them)"
            ))),
        }
    }

    /// The active officer whose token this is.
    pub fn authenticate(&self, token: &str) -> Option<&OfficerEntry> {
        let hash = token_hash(token);
        // Every entry is compared, so the time taken does not depend on which matched.
        let mut found = None;
        for o in &self.officers {
            if same(&o.token_sha256, &hash) && o.revoked.is_none() {
                found = Some(o);
            }
        }
        found
    }
}

/// The officers file as a running desk sees it: read again whenever it changes.
#[derive(Debug)]
pub struct Officers {
    path: PathBuf,
    state: Mutex<(Option<(SystemTime, u64)>, OfficersFile)>,
    /// An officer of this process only (the console of `fusion run`), never written.
    session: Option<OfficerEntry>,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl Officers {
    /// The officers of the file at `path` (which may not exist yet).
    pub fn open(path: &Path) -> Result<Self, OfficersError> {
        let file = OfficersFile::load(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            state: Mutex::new((stamp(path), file)),
            session: None,
        })
    }

    /// Adds an officer known to this process only, with a new token (returned): the
    /// console of `fusion run` when it opens the desk in its own terminal.
    pub fn with_session_officer(mut self, name: &str, center: &str) -> (Self, String) {
        let token = new_token();
        self.session = Some(OfficerEntry {
            name: name.to_string(),
            center: center.to_string(),
            token_sha256: token_hash(&token),
            added: Timestamp::now(),
            revoked: None,
        });
        (self, token)
    }

    /// The officers as the file says now (re-read if it changed; a file that became
    /// invalid is reported and the last good version stays).
    pub fn current(&self) -> OfficersFile {
        let Ok(mut state) = self.state.lock() else {
            return OfficersFile::default();
        };
        let now = stamp(&self.path);
        if now != state.0 {
            match OfficersFile::load(&self.path) {
                Ok(file) => {
                    tracing::info!(path = %self.path.display(), officers = file.officers.len(), "officers file reloaded");
                    *state = (now, file);
                }
                Err(e) => {
                    tracing::error!(error = %e, "the officers file changed but cannot be read; the last good version stays");
                    state.0 = now;
                }
            }
        }
        state.1.clone()
    }

    /// The active officer with this token: name and center.
    pub fn authenticate(&self, token: &str) -> Option<(String, String)> {
        if let Some(o) = &self.session
            && same(&o.token_sha256, &token_hash(token))
        {
            return Some((o.name.clone(), o.center.clone()));
        }
        self.current()
            .authenticate(token)
            .map(|o| (o.name.clone(), o.center.clone()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_only_as_hashes_and_revocation_refuses_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("officers.toml");
        let mut f = OfficersFile::load(&path).unwrap();
        let t0 = Timestamp::UNIX_EPOCH;
        let token = f.add("alice", "Lyon", t0).unwrap();
        assert!(
            f.add("alice", "Lyon", t0).is_err(),
            "an active name is refused"
        );
        f.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&token), "the token itself is never written");
        assert!(text.contains(&token_hash(&token)));

        let officers = Officers::open(&path).unwrap();
        assert_eq!(
            officers.authenticate(&format!("{token}\n")),
            Some(("alice".into(), "Lyon".into()))
        );
        assert_eq!(officers.authenticate("fdk_wrong"), None);

        let mut f = OfficersFile::load(&path).unwrap();
        f.revoke("alice", t0).unwrap();
        assert!(f.revoke("alice", t0).is_err());
        f.save(&path).unwrap();
        assert_eq!(
            officers.authenticate(&token),
            None,
            "the running desk re-reads the file"
        );
        // A revoked name may be given a new token; the old one stays refused.
        let mut f = OfficersFile::load(&path).unwrap();
        let again = f.add("alice", "Lyon", t0).unwrap();
        f.save(&path).unwrap();
        assert_eq!(officers.authenticate(&token), None);
        assert!(officers.authenticate(&again).is_some());
        assert!(f.add("bad name", "Lyon", t0).is_err());
    }

    #[test]
    fn center_settings_parse() {
        let f: OfficersFile = toml::from_str(
            "[[center]]\nname = \"Lyon\"\nrecipient = \"desk-lyon\"\nclearance = \"AMBER\"\npersonal_data = true\n",
        )
        .unwrap();
        assert_eq!(f.centers[0].clearance, Some(Tlp::Amber));
        assert!(toml::from_str::<OfficersFile>("[[center]]\nname = \"x\"\ncolour = 1\n").is_err());
    }
}
