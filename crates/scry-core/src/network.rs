//! Where an address sits on the network — its autonomous system and its location — when
//! several sources say so and disagree (Criminal IP's API, its offline database, the network
//! data built into scry). One precedence picks the value shown and exported; the other claims
//! stay as alternatives, each with its source.
//!
//! The precedence, for the autonomous system and the location separately:
//! 1. the most specific claim: a location with a city over one with a region over a country
//!    alone; an autonomous system with its name over a bare number;
//! 2. then the freshest: a live answer (a source without `data_as_of`, asked when the indicator
//!    was enriched) over offline data, and newer offline data over older;
//! 3. then the order of [`SOURCE_ORDER`], then the source's name.

use serde::Serialize;
use serde_json::Value;

use crate::exposure::Exposure;

/// Sources in the order they win a tie: Criminal IP's API, its offline database, then the
/// network data built into scry.
pub const SOURCE_ORDER: [&str; 3] = ["criminalip", "ctidb", "geo"];

/// What one source says about an address's place on the network.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkClaim {
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_name: Option<String>,
    /// ISO 3166 alpha-2, upper case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    /// The date of the source's data (`2026-06-17`); none for a live answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_as_of: Option<String>,
}

/// The chosen autonomous system and location, and every claim that says otherwise.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Placement {
    /// The claim whose autonomous system is shown and exported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autonomous_system: Option<NetworkClaim>,
    /// The claim whose location is shown and exported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<NetworkClaim>,
    /// Claims whose autonomous system or country differ from the chosen ones.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<NetworkClaim>,
}

impl Placement {
    /// Nothing is known.
    pub fn is_empty(&self) -> bool {
        self.autonomous_system.is_none() && self.location.is_none()
    }
}

/// Every source's claim among per-source details (`{name: {status, data}}`, as stored).
pub fn claims(sources: &Value) -> Vec<NetworkClaim> {
    let Some(sources) = sources.as_object() else {
        return Vec::new();
    };
    let text = |value: Option<String>| value.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    sources
        .iter()
        .filter_map(|(name, detail)| {
            let data = detail.get("data").filter(|d| d.is_object())?;
            let exposure = Exposure::read(data);
            let country = text(exposure.country)
                .map(|c| c.to_ascii_uppercase())
                .filter(|c| c.len() == 2 && c.chars().all(|ch| ch.is_ascii_alphabetic()));
            let claim = NetworkClaim {
                source: name.clone(),
                asn: exposure.asn.filter(|n| *n > 0),
                as_name: text(exposure.as_name),
                region: text(exposure.region).filter(|_| country.is_some()),
                city: text(exposure.city).filter(|_| country.is_some()),
                latitude: exposure.latitude.filter(|_| country.is_some()),
                longitude: exposure.longitude.filter(|_| country.is_some()),
                country,
                // Scry's network data says it beside the claim; a Criminal IP database file
                // in its description.
                data_as_of: [data.get("data_as_of"), data.pointer("/database/data_as_of")]
                    .into_iter()
                    .flatten()
                    .find_map(Value::as_str)
                    .map(str::to_owned),
            };
            (claim.asn.is_some() || claim.country.is_some()).then_some(claim)
        })
        .collect()
}

/// The precedence's order among claims equally specific: live first, then newer data, then
/// [`SOURCE_ORDER`], then the name. Smaller is better.
fn freshness_rank(claim: &NetworkClaim) -> (bool, std::cmp::Reverse<String>, usize, String) {
    (
        claim.data_as_of.is_some(),
        std::cmp::Reverse(claim.data_as_of.clone().unwrap_or_default()),
        SOURCE_ORDER
            .iter()
            .position(|s| *s == claim.source)
            .unwrap_or(SOURCE_ORDER.len()),
        claim.source.clone(),
    )
}

/// Picks the autonomous system and the location by the precedence above.
pub fn place(claims: &[NetworkClaim]) -> Placement {
    let autonomous_system = claims
        .iter()
        .filter(|c| c.asn.is_some())
        .min_by_key(|c| (c.as_name.is_none(), freshness_rank(c)))
        .cloned();
    let specificity = |c: &NetworkClaim| {
        if c.city.is_some() {
            0
        } else if c.region.is_some() {
            1
        } else {
            2
        }
    };
    let location = claims
        .iter()
        .filter(|c| c.country.is_some())
        .min_by_key(|c| (specificity(c), freshness_rank(c)))
        .cloned();
    let differs = |c: &NetworkClaim| {
        let other_asn = c.asn.is_some()
            && autonomous_system
                .as_ref()
                .is_some_and(|chosen| chosen.asn != c.asn);
        let other_country = c.country.is_some()
            && location
                .as_ref()
                .is_some_and(|chosen| chosen.country != c.country);
        other_asn || other_country
    };
    let alternatives = claims.iter().filter(|c| differs(c)).cloned().collect();
    Placement {
        autonomous_system,
        location,
        alternatives,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_most_specific_then_the_freshest_claim_wins_and_the_rest_are_alternatives() {
        let sources = json!({
            "geo": {"status": "ok", "data": {"asn": 9009, "as_name": "M247", "country": "ro", "data_as_of": "2026-06-17"}},
            "criminalip": {"status": "ok", "data": {"asn": "AS205553", "as_name": "Cloud LLC", "country": "RU", "city": "Moscow"}},
            "classify": {"status": "ok", "data": {"class": "public"}},
        });
        let claims = claims(&sources);
        assert_eq!(claims.len(), 2, "{claims:?}");
        let placed = place(&claims);
        let asn = placed.autonomous_system.expect("an AS");
        assert_eq!(
            (asn.source.as_str(), asn.asn),
            ("criminalip", Some(205_553))
        );
        let location = placed.location.expect("a location");
        assert_eq!(location.country.as_deref(), Some("RU"));
        assert_eq!(location.city.as_deref(), Some("Moscow"));
        assert_eq!(placed.alternatives.len(), 1);
        assert_eq!(placed.alternatives[0].source, "geo");
        // Country codes are upper case whatever the source wrote.
        assert_eq!(placed.alternatives[0].country.as_deref(), Some("RO"));
    }

    #[test]
    fn a_more_specific_location_beats_a_fresher_country() {
        let claims = claims(&json!({
            "criminalip": {"data": {"country": "NL"}},
            "geo": {"data": {"country": "NL", "city": "Amsterdam", "data_as_of": "2025-01-01"}},
        }));
        let placed = place(&claims);
        assert_eq!(placed.location.expect("a location").source, "geo");
        assert!(
            placed.alternatives.is_empty(),
            "the same country is no alternative"
        );
    }

    #[test]
    fn among_offline_sources_newer_data_wins_and_a_bare_number_loses_to_a_name() {
        let claims = claims(&json!({
            "geo": {"data": {"asn": 1, "as_name": "OLD", "data_as_of": "2025-01-01"}},
            "ctidb": {"data": {"asn": 2, "as_name": "NEW", "data_as_of": "2026-01-01"}},
            "criminalip": {"data": {"asn": 3}},
        }));
        let placed = place(&claims);
        assert_eq!(placed.autonomous_system.expect("an AS").asn, Some(2));
        assert_eq!(placed.alternatives.len(), 2);
        assert!(place(&[]).is_empty());
    }
}
