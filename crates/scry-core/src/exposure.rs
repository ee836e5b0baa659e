//! What Criminal IP knows about an indicator's exposure, typed: the fields the Criminal IP API
//! mapping and the offline CTIDB source write into their answers, and everything that scores,
//! shows, pivots on or exports them reads. An answer is JSON only where it is stored or sent;
//! [`Exposure::read`] is the one place that reads it, tolerantly ([`crate::tolerant`]): a field
//! of an unexpected shape counts as absent, a list element of one is left out, and the rest
//! still counts.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::tolerant::{lenient, lenient_list};

/// One exposure report: an IP's (levels, network, services, vulnerabilities) or a site's
/// (domain score, phishing, addresses, certificates); what neither has is empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Exposure {
    #[serde(deserialize_with = "lenient")]
    pub inbound: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub outbound: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub domain_score: Option<String>,
    #[serde(deserialize_with = "lenient_list")]
    pub flags: Vec<String>,
    #[serde(deserialize_with = "lenient_number")]
    pub asn: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub as_name: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub organization: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub country: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub region: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub city: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub latitude: Option<f64>,
    #[serde(deserialize_with = "lenient")]
    pub longitude: Option<f64>,
    #[serde(deserialize_with = "lenient_list")]
    pub services: Vec<Service>,
    #[serde(deserialize_with = "lenient_list")]
    pub vulnerabilities: Vec<Vulnerability>,
    #[serde(deserialize_with = "lenient_list")]
    pub categories: Vec<String>,
    #[serde(deserialize_with = "lenient_list")]
    pub hostnames: Vec<String>,
    #[serde(deserialize_with = "lenient")]
    pub phishing_probability: Option<f64>,
    #[serde(deserialize_with = "lenient_list")]
    pub mapped_ips: Vec<Host>,
    #[serde(deserialize_with = "lenient_list")]
    pub connected_ips: Vec<Host>,
    #[serde(deserialize_with = "lenient_list")]
    pub countries: Vec<String>,
    #[serde(deserialize_with = "lenient_list")]
    pub certificates: Vec<Certificate>,
}

/// An open port and what answers on it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Service {
    #[serde(deserialize_with = "lenient_number")]
    pub port: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub transport: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub protocol: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub product: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub version: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub banner: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub last_seen: Option<String>,
}

/// A vulnerability found on the indicator, with the ports it was found on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Vulnerability {
    #[serde(deserialize_with = "lenient")]
    pub cve: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub cvss_v3: Option<f64>,
    #[serde(deserialize_with = "lenient")]
    pub cvss_v2: Option<f64>,
    #[serde(deserialize_with = "lenient_list")]
    pub ports: Vec<u64>,
}

/// An address a site maps to or talks to, with its network.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Host {
    #[serde(deserialize_with = "lenient")]
    pub ip: Option<String>,
    #[serde(deserialize_with = "lenient_number")]
    pub asn: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub as_name: Option<String>,
}

/// A certificate a site presents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Certificate {
    #[serde(deserialize_with = "lenient")]
    pub subject: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub issuer: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub valid_from: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub valid_to: Option<String>,
}

/// The sources whose answers are exposure reports, in the order they are preferred: Criminal
/// IP's API, then its offline database.
pub const EXPOSURE_SOURCES: [&str; 2] = ["criminalip", "ctidb"];

impl Exposure {
    /// Reads a stored or just-written answer's detail.
    pub fn read(detail: &Value) -> Exposure {
        Exposure::deserialize(detail).unwrap_or_default()
    }

    /// The preferred exposure report among per-source details (`name → detail`), with the
    /// source it came from.
    pub fn preferred<'a>(
        detail_of: impl Fn(&str) -> Option<&'a Value>,
    ) -> Option<(&'static str, Exposure)> {
        EXPOSURE_SOURCES.into_iter().find_map(|name| {
            detail_of(name)
                .filter(|d| d.is_object())
                .map(|d| (name, Exposure::read(d)))
        })
    }
}

/// A number, or a string holding one (`"AS4766"` and `"4766"` alike).
fn lenient_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s
            .trim()
            .trim_start_matches("AS")
            .trim_start_matches("as")
            .parse()
            .ok(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_answer_reads_typed_and_a_bad_field_loses_only_itself() {
        let detail = serde_json::json!({
            "inbound": "Critical", "outbound": null, "asn": "4766", "country": "KR",
            "services": [{"port": 22, "protocol": "ssh"}, {"port": "x"}],
            "vulnerabilities": "not a list",
            "mapped_ips": [{"ip": "1.2.3.4", "asn": 9009}],
        });
        let exposure = Exposure::read(&detail);
        assert_eq!(exposure.inbound.as_deref(), Some("Critical"));
        assert_eq!(exposure.outbound, None);
        assert_eq!(exposure.asn, Some(4766));
        assert_eq!(exposure.country.as_deref(), Some("KR"));
        assert_eq!(exposure.services.len(), 2);
        assert_eq!(exposure.services[0].port, Some(22));
        assert_eq!(exposure.services[1].port, None);
        assert!(exposure.vulnerabilities.is_empty());
        assert_eq!(exposure.mapped_ips[0].asn, Some(9009));
        assert_eq!(Exposure::read(&Value::Null), Exposure::default());
    }
}
