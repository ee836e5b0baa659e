//! Traffic Light Protocol levels, which decide whether an indicator may be shared with a source.
//!
//! Both TLP 1.0 and 2.0 spellings are accepted; WHITE is CLEAR. Levels are ordered from most
//! shareable to least, so "above a source's maximum" is a plain comparison.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tlp {
    Clear,
    Green,
    Amber,
    AmberStrict,
    Red,
}

impl Tlp {
    pub fn as_str(self) -> &'static str {
        match self {
            Tlp::Clear => "clear",
            Tlp::Green => "green",
            Tlp::Amber => "amber",
            Tlp::AmberStrict => "amber+strict",
            Tlp::Red => "red",
        }
    }
}

impl fmt::Display for Tlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TLP:{}", self.as_str().to_ascii_uppercase())
    }
}

/// Written as its level's name (`amber+strict`); read in any spelling [`FromStr`] takes.
impl serde::Serialize for Tlp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Tlp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Tlp, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown TLP level {0:?} (expected clear, white, green, amber, amber+strict or red)")]
pub struct UnknownTlp(pub String);

impl FromStr for Tlp {
    type Err = UnknownTlp;

    fn from_str(s: &str) -> Result<Tlp, UnknownTlp> {
        let lower = s.trim().to_ascii_lowercase();
        let level = lower
            .strip_prefix("tlp:")
            .or_else(|| lower.strip_prefix("tlp-"))
            .unwrap_or(&lower);
        match level.trim() {
            "clear" | "white" => Ok(Tlp::Clear),
            "green" => Ok(Tlp::Green),
            "amber" => Ok(Tlp::Amber),
            "amber+strict" | "amber-strict" | "amber strict" => Ok(Tlp::AmberStrict),
            "red" => Ok(Tlp::Red),
            _ => Err(UnknownTlp(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_generations_and_orders_levels() {
        assert_eq!("TLP:WHITE".parse(), Ok(Tlp::Clear));
        assert_eq!("tlp:clear".parse(), Ok(Tlp::Clear));
        assert_eq!("AMBER+STRICT".parse(), Ok(Tlp::AmberStrict));
        assert_eq!("red".parse(), Ok(Tlp::Red));
        assert!("purple".parse::<Tlp>().is_err());
        assert!(Tlp::Red > Tlp::Amber && Tlp::Amber > Tlp::Green && Tlp::Green > Tlp::Clear);
        assert_eq!(Tlp::AmberStrict.to_string(), "TLP:AMBER+STRICT");
    }
}
