//! What Criminal IP knows about an indicator's exposure, typed: the fields the Criminal IP API
//! mapping and the offline CTIDB source write into their answers, and everything that scores,
//! shows, pivots on or exports them reads. An answer is JSON only where it is stored or sent;
//! [`Exposure::read`] is the one place that reads it, tolerantly ([`crate::tolerant`]): a field
//! of an unexpected shape counts as absent, a list element of one is left out, and the rest
//! still counts.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::tolerant::{lenient, lenient_list};

/// Criminal IP's five-step risk level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Level {
    Safe,
    Low,
    Moderate,
    Dangerous,
    Critical,
}

impl Level {
    /// Accepts `"Critical"`, `"critical"`, and the legacy integers (0 and 1 Safe … 5 Critical).
    pub fn from_value(value: &Value) -> Option<Level> {
        match value {
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "safe" => Some(Level::Safe),
                "low" => Some(Level::Low),
                "moderate" => Some(Level::Moderate),
                "dangerous" => Some(Level::Dangerous),
                "critical" => Some(Level::Critical),
                _ => None,
            },
            Value::Number(n) => match n.as_f64()? as i64 {
                0 | 1 => Some(Level::Safe),
                2 => Some(Level::Low),
                3 => Some(Level::Moderate),
                4 => Some(Level::Dangerous),
                5 => Some(Level::Critical),
                _ => None,
            },
            _ => None,
        }
    }

    /// The level's name as Criminal IP writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Safe => "Safe",
            Level::Low => "Low",
            Level::Moderate => "Moderate",
            Level::Dangerous => "Dangerous",
            Level::Critical => "Critical",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Level, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Level::from_value(&value)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown level {value}")))
    }
}

/// One exposure report: an IP's (levels, network, services, vulnerabilities) or a site's
/// (domain score, phishing, addresses, certificates); what neither has is empty. It is written
/// by the Criminal IP API mapping and the offline CTIDB source alike, and stored as JSON with
/// the empty fields left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Exposure {
    /// The inbound risk level (`Critical` … `Safe`).
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub inbound: Option<Level>,
    /// The outbound risk level.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub outbound: Option<Level>,
    /// A site's risk level.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub domain_score: Option<Level>,
    /// The properties set on the address (`tor`, `vpn`, `hosting`, …).
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient_list"
    )]
    pub flags: Vec<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_number"
    )]
    pub asn: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub as_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub organization: Option<String>,
    /// ISO 3166 alpha-2, upper case.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub latitude: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub longitude: Option<f64>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient_list"
    )]
    pub services: Vec<Service>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient_list"
    )]
    pub vulnerabilities: Vec<Vulnerability>,
    /// The vendor's categories of the address (`malware`, `scanner`, …).
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient_list"
    )]
    pub categories: Vec<String>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient_list"
    )]
    pub hostnames: Vec<String>,
    /// Tags the offline database gives the address.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient_list"
    )]
    pub tags: Vec<String>,
    /// How many domains are seen on the address.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_number"
    )]
    pub connected_domains: Option<u64>,
    /// How many IDS signatures fired on it.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_number"
    )]
    pub ids_hits: Option<u64>,
    /// The malicious-info verdict, when it was asked for.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub is_malicious: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub can_remote_access: Option<bool>,
    /// The domain scan the report comes from.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_number"
    )]
    pub scan_id: Option<u64>,
    /// `false` when the scan found no such domain.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub exists: Option<bool>,
    /// Percent.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub phishing_probability: Option<f64>,
    /// What the page asks for (`password`, …).
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub credential_input: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub fake_domain: Option<bool>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_number"
    )]
    pub suspicious_files: Option<u64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_number"
    )]
    pub phishing_records: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub dga_score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub newborn_domain: Option<String>,
    /// When the domain was registered.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub registrar: Option<String>,
    /// The page title.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub report_time: Option<String>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient_list"
    )]
    pub mapped_ips: Vec<Host>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient_list"
    )]
    pub connected_ips: Vec<Host>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient_list"
    )]
    pub countries: Vec<String>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient_list"
    )]
    pub certificates: Vec<Certificate>,
    /// The domain quick check, when it was asked for.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub quick_check: Option<QuickCheck>,
    /// The offline database that answered.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub database: Option<OfflineDatabase>,
}

/// An open port and what answers on it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Service {
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_number"
    )]
    pub port: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub transport: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub product: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub banner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub vulnerable: Option<bool>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient_list"
    )]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub last_seen: Option<String>,
}

/// A vulnerability found on the indicator, with the ports it was found on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Vulnerability {
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub cve: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub cvss_v3: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub cvss_v2: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub product: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub version: Option<String>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient_list"
    )]
    pub ports: Vec<u64>,
}

/// An address a site maps to or talks to, with its network.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Host {
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub ip: Option<String>,
    /// Its risk level.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub score: Option<Level>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_number"
    )]
    pub asn: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub as_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub country: Option<String>,
}

/// A certificate a site presents (the offline database names only its subject).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Certificate {
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub valid_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub valid_to: Option<String>,
}

/// The domain quick check: whether the site is tied to a legitimate or a malicious one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QuickCheck {
    /// `malicious`, `safe`, …
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub result: Option<String>,
    #[serde(
        rename = "type",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub registered: Option<String>,
}

/// What an offline database file says about itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OfflineDatabase {
    /// `ctidb` or `packed`.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub layout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub plan: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_number"
    )]
    pub tier: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub data_as_of: Option<String>,
}

/// The sources whose answers are exposure reports, in the order they are preferred: Criminal
/// IP's API, then its offline database.
pub const EXPOSURE_SOURCES: [&str; 2] = ["criminalip", "ctidb"];

impl Exposure {
    /// Reads a stored or just-written answer's detail.
    pub fn read(detail: &Value) -> Exposure {
        Exposure::deserialize(detail).unwrap_or_default()
    }

    /// The report as stored: JSON with the empty fields left out.
    pub fn to_detail(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
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
        assert_eq!(exposure.inbound, Some(Level::Critical));
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
