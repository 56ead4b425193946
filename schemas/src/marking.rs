//! Information markings: TLP 2.0 and the owner's sharing list.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Traffic Light Protocol 2.0 level, ordered from least to most restrictive.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum Tlp {
    /// May be shared without limit.
    #[serde(rename = "CLEAR", alias = "WHITE")]
    Clear,
    /// The community: every national bureau.
    #[serde(rename = "GREEN")]
    Green,
    /// The recipients on the owner's sharing list.
    #[serde(rename = "AMBER")]
    Amber,
    /// The owner's own organisation only.
    #[serde(rename = "AMBER+STRICT")]
    AmberStrict,
    /// Named recipients only.
    #[serde(rename = "RED")]
    Red,
}

impl Tlp {
    /// The label as TLP 2.0 writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Tlp::Clear => "CLEAR",
            Tlp::Green => "GREEN",
            Tlp::Amber => "AMBER",
            Tlp::AmberStrict => "AMBER+STRICT",
            Tlp::Red => "RED",
        }
    }

    /// The level a label names, ignoring ASCII case (`TLP:` prefix allowed; `WHITE` is TLP 1.0's CLEAR).
    pub fn parse(label: &str) -> Option<Tlp> {
        let label = label.trim().to_ascii_uppercase();
        match label.strip_prefix("TLP:").unwrap_or(&label) {
            "CLEAR" | "WHITE" => Some(Tlp::Clear),
            "GREEN" => Some(Tlp::Green),
            "AMBER" => Some(Tlp::Amber),
            "AMBER+STRICT" => Some(Tlp::AmberStrict),
            "RED" => Some(Tlp::Red),
            _ => None,
        }
    }
}

/// The marking of a piece of information: its TLP level and who the owner shares it with.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Marking {
    /// TLP 2.0 level.
    pub tlp: Tlp,
    /// Owner of the information (an organisation id).
    pub owner: String,
    /// Recipients (bureau or organisation ids) the owner allows; sorted, without duplicates.
    pub sharing: Vec<String>,
}

impl Marking {
    /// The strictest combination of two markings: the higher TLP, and only the
    /// recipients both owners allow. Owners that differ are joined with `+`.
    pub fn strictest(&self, other: &Marking) -> Marking {
        let tlp = self.tlp.max(other.tlp);
        let sharing = self
            .sharing
            .iter()
            .filter(|r| other.sharing.contains(r))
            .cloned()
            .collect();
        let owner = if self.owner == other.owner {
            self.owner.clone()
        } else {
            let mut owners: Vec<&str> = self
                .owner
                .split('+')
                .chain(other.owner.split('+'))
                .collect();
            owners.sort_unstable();
            owners.dedup();
            owners.join("+")
        };
        Marking {
            tlp,
            owner,
            sharing,
        }
    }
}
