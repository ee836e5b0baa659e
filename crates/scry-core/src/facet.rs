//! Facets: the kinds of value an indicator shares with others (an AS, a CVE, a /24, …), which the
//! store indexes for pivots and the rules read. A facet is a word (`asn`, `resolves-to`) only
//! where it is stored or sent.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One kind of shared value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Facet {
    /// The AS an address is announced from (or a site's addresses are).
    Asn,
    /// A country, ISO 3166 alpha-2.
    Country,
    /// A CVE exposed on the indicator.
    Cve,
    /// An exposed service, `port/protocol`.
    Service,
    /// A certificate subject.
    Certificate,
    /// A reverse-DNS or seen hostname.
    Hostname,
    /// The address's own /24 (IPv4) or /48 (IPv6).
    Subnet,
    /// A name's registrable domain.
    Registrable,
    /// An address a domain resolves to.
    ResolvesTo,
}

impl Facet {
    /// Every facet, in the order of their words.
    pub const ALL: [Facet; 9] = [
        Facet::Asn,
        Facet::Certificate,
        Facet::Country,
        Facet::Cve,
        Facet::Hostname,
        Facet::Registrable,
        Facet::ResolvesTo,
        Facet::Service,
        Facet::Subnet,
    ];

    /// The facet's word, as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Facet::Asn => "asn",
            Facet::Country => "country",
            Facet::Cve => "cve",
            Facet::Service => "service",
            Facet::Certificate => "certificate",
            Facet::Hostname => "hostname",
            Facet::Subnet => "subnet",
            Facet::Registrable => "registrable",
            Facet::ResolvesTo => "resolves-to",
        }
    }
}

/// Facets sort by their words, as the store lists them.
impl Ord for Facet {
    fn cmp(&self, other: &Facet) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Facet {
    fn partial_cmp(&self, other: &Facet) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Facet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that names no facet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown facet {0:?} (expected one of asn, certificate, country, cve, hostname, registrable, resolves-to, service, subnet)"
)]
pub struct UnknownFacet(pub String);

impl FromStr for Facet {
    type Err = UnknownFacet;

    fn from_str(word: &str) -> Result<Facet, UnknownFacet> {
        Facet::ALL
            .into_iter()
            .find(|facet| facet.as_str() == word)
            .ok_or_else(|| UnknownFacet(word.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_facet_reads_back_from_its_word_and_all_is_in_word_order() {
        for facet in Facet::ALL {
            assert_eq!(facet.as_str().parse::<Facet>(), Ok(facet));
            assert_eq!(
                serde_json::to_value(facet).ok(),
                Some(serde_json::Value::from(facet.as_str()))
            );
        }
        let mut sorted = Facet::ALL;
        sorted.sort();
        assert_eq!(sorted, Facet::ALL);
        assert!("as".parse::<Facet>().is_err());
    }
}
