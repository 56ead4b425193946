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
    /// The strictest combination of two markings: the higher TLP, only the recipients
    /// both sharing lists allow, and both owners (joined with `+`, so neither counts as
    /// the sole owner).
    ///
    /// A list only restricts at the level that uses it: TLP:CLEAR restricts nobody, so
    /// combining with a CLEAR marking changes nothing; a TLP:GREEN list only widens
    /// the community, so next to an AMBER or RED marking the stricter marking's list
    /// stands alone. The result may therefore still name a recipient that a GREEN
    /// input withholds (a partner on the AMBER list but outside the community): the
    /// egress rule checks every contributing marking as well
    /// ([`crate::Alert::markings`]), not only this summary.
    pub fn strictest(&self, other: &Marking) -> Marking {
        if self.tlp == Tlp::Clear && other.tlp != Tlp::Clear {
            return other.clone();
        }
        if other.tlp == Tlp::Clear && self.tlp != Tlp::Clear {
            return self.clone();
        }
        let tlp = self.tlp.max(other.tlp);
        let sharing = match (self.tlp, other.tlp) {
            (Tlp::Green, o) if o > Tlp::Green => other.sharing.clone(),
            (s, Tlp::Green) if s > Tlp::Green => self.sharing.clone(),
            _ => self
                .sharing
                .iter()
                .filter(|r| other.sharing.contains(r))
                .cloned()
                .collect(),
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn m(tlp: Tlp, owner: &str, sharing: &[&str]) -> Marking {
        Marking {
            tlp,
            owner: owner.to_string(),
            sharing: sharing.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn clear_restricts_nothing() {
        let amber = m(Tlp::Amber, "p1", &["FR", "ncb-de"]);
        let clear = m(Tlp::Clear, "osint", &[]);
        assert_eq!(clear.strictest(&amber), amber);
        assert_eq!(amber.strictest(&clear), amber);
        assert_eq!(
            clear.strictest(&m(Tlp::Clear, "o2", &[])),
            m(Tlp::Clear, "o2+osint", &[])
        );
    }

    #[test]
    fn a_green_list_does_not_narrow_an_amber_list() {
        let amber = m(Tlp::Amber, "p1", &["FR", "ncb-de"]);
        let green = m(Tlp::Green, "p2", &["acme"]);
        let both = m(Tlp::Amber, "p1+p2", &["FR", "ncb-de"]);
        assert_eq!(green.strictest(&amber), both);
        assert_eq!(amber.strictest(&green), both);
    }

    #[test]
    fn lists_at_the_same_level_intersect_and_the_higher_tlp_wins() {
        let a = m(Tlp::Amber, "p1", &["DE", "FR"]);
        let r = m(Tlp::Red, "p2", &["FR", "IT"]);
        assert_eq!(a.strictest(&r), m(Tlp::Red, "p1+p2", &["FR"]));
        let g1 = m(Tlp::Green, "p1", &["acme", "globex"]);
        let g2 = m(Tlp::Green, "p1", &["acme"]);
        assert_eq!(g1.strictest(&g2), m(Tlp::Green, "p1", &["acme"]));
    }
}
