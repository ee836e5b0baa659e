//! The Criminal IP answers as they arrive, decoded tolerantly.
//!
//! The API has no published schema and has changed shape over the years (see
//! `shared/reference/criminalip-api.md` §3): scores are strings (`"Critical"`), lower-case strings
//! or legacy integers 1–5; `asn` is an int or a string; `city` can be an object or empty; sections
//! can be null, missing or hold historical duplicates. Every field here is optional, every list
//! element is [`Lenient`] (an element of an unexpected shape is dropped, not fatal), and the raw
//! JSON is kept beside the decoded view so nothing the service sent is lost.

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};
use serde_json::Value;

pub use scry_core::tolerant::Lenient;
use scry_core::tolerant::{lenient, lenient_list};

/// A `{count, data: [...]}` section; elements that do not decode are left out.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct Section<T: DeserializeOwned> {
    pub count: Lenient<u64>,
    #[serde(deserialize_with = "lenient_list")]
    pub data: Vec<T>,
}

impl<T: DeserializeOwned> Default for Section<T> {
    fn default() -> Section<T> {
        Section {
            count: Lenient(None),
            data: Vec::new(),
        }
    }
}

/// Criminal IP's five-step risk level.
pub use scry_core::exposure::Level;

/// Text that may arrive as a string or a number (`asn`, `postal_code`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Text, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(s) => Ok(Text(s)),
            Value::Number(n) => Ok(Text(n.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "expected text, found {other}"
            ))),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ScorePair {
    #[serde(deserialize_with = "lenient")]
    pub inbound: Option<Level>,
    #[serde(deserialize_with = "lenient")]
    pub outbound: Option<Level>,
}

/// The boolean flags (`issues` in current reports, `tags` in legacy ones).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Issues {
    pub is_vpn: Lenient<bool>,
    pub is_proxy: Lenient<bool>,
    pub is_cloud: Lenient<bool>,
    pub is_tor: Lenient<bool>,
    pub is_hosting: Lenient<bool>,
    pub is_mobile: Lenient<bool>,
    pub is_darkweb: Lenient<bool>,
    pub is_scanner: Lenient<bool>,
    pub is_snort: Lenient<bool>,
    pub is_anonymous_vpn: Lenient<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Whois {
    #[serde(deserialize_with = "lenient")]
    pub as_name: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub as_no: Option<Text>,
    /// A string, or an object / empty value in some rows: only a string is kept.
    #[serde(deserialize_with = "lenient")]
    pub city: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub region: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub org_name: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub org_country_code: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub latitude: Option<f64>,
    #[serde(deserialize_with = "lenient")]
    pub longitude: Option<f64>,
    #[serde(deserialize_with = "lenient")]
    pub confirmed_time: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Port {
    #[serde(deserialize_with = "lenient")]
    pub open_port_no: Option<u16>,
    #[serde(deserialize_with = "lenient")]
    pub socket: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub protocol: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub app_name: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub app_version: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub banner: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub port_status: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub tags: Option<Vec<String>>,
    #[serde(deserialize_with = "lenient")]
    pub is_vulnerability: Option<bool>,
    #[serde(deserialize_with = "lenient")]
    pub confirmed_time: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct PortRef {
    #[serde(deserialize_with = "lenient")]
    pub port: Option<u16>,
    #[serde(deserialize_with = "lenient")]
    pub socket: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Vulnerability {
    #[serde(deserialize_with = "lenient")]
    pub cve_id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub cve_description: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub cvssv3_score: Option<f64>,
    #[serde(deserialize_with = "lenient")]
    pub cvssv2_score: Option<f64>,
    #[serde(deserialize_with = "lenient")]
    pub app_name: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub app_version: Option<String>,
    /// A list of `{port, socket}` in current reports; a bare number in some captures.
    #[serde(deserialize_with = "port_refs")]
    pub open_port_no: Vec<PortRef>,
}

fn port_refs<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<PortRef>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect(),
        Value::Number(n) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .map(|p| {
                vec![PortRef {
                    port: Some(p),
                    socket: None,
                }]
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    })
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Category {
    #[serde(rename = "type", deserialize_with = "lenient")]
    pub kind: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub detect_source: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub confirmed_time: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct IdsHit {
    #[serde(deserialize_with = "lenient")]
    pub classification: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub message: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub source_system: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub confirmed_time: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Hostname {
    #[serde(deserialize_with = "lenient")]
    pub domain_name_full: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ConnectedDomain {
    #[serde(deserialize_with = "lenient")]
    pub domain: Option<String>,
}

/// `GET /v1/asset/ip/report` (current) and `GET /v1/ip/data` (legacy).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct IpReport {
    #[serde(deserialize_with = "lenient")]
    pub ip: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub score: Option<ScorePair>,
    #[serde(alias = "tags", deserialize_with = "lenient")]
    pub issues: Option<Issues>,
    pub whois: Lenient<Section<Whois>>,
    pub port: Lenient<Section<Port>>,
    pub vulnerability: Lenient<Section<Vulnerability>>,
    pub ip_category: Lenient<Section<Category>>,
    pub ids: Lenient<Section<IdsHit>>,
    pub hostname: Lenient<Section<Hostname>>,
    pub domain: Lenient<Section<ConnectedDomain>>,
    pub protected_ip: Lenient<Section<Value>>,
    pub honeypot: Lenient<Section<Value>>,
}

/// `GET /v1/feature/ip/malicious-info`: the extra signals it adds.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct MaliciousInfo {
    #[serde(deserialize_with = "lenient")]
    pub is_malicious: Option<bool>,
    #[serde(deserialize_with = "lenient")]
    pub can_remote_access: Option<bool>,
    #[serde(deserialize_with = "lenient")]
    pub is_anonymous_vpn: Option<bool>,
    pub scanning_record: Lenient<Section<Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct DomainScore {
    #[serde(deserialize_with = "lenient")]
    pub score: Option<Level>,
    #[serde(deserialize_with = "lenient")]
    pub score_num: Option<f64>,
    #[serde(deserialize_with = "lenient")]
    pub score_percentage: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct MainDomainInfo {
    #[serde(deserialize_with = "lenient")]
    pub main_domain: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub domain_created: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub domain_registrar: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub domain_score: Option<DomainScore>,
    #[serde(deserialize_with = "lenient")]
    pub title: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct DomainSummary {
    #[serde(deserialize_with = "lenient")]
    pub url_phishing_prob: Option<f64>,
    #[serde(deserialize_with = "lenient")]
    pub phishing_record: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub suspicious_file: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub cred_input: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub fake_domain: Option<bool>,
    #[serde(deserialize_with = "lenient")]
    pub dga_score: Option<f64>,
    #[serde(deserialize_with = "lenient")]
    pub newborn_domain: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub punycode: Option<bool>,
    #[serde(deserialize_with = "lenient")]
    pub list_of_countries: Option<Vec<Option<String>>>,
    #[serde(deserialize_with = "lenient")]
    pub abuse_record: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct MappedIp {
    #[serde(deserialize_with = "lenient")]
    pub ip: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub as_name: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub country: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub score: Option<Level>,
    #[serde(deserialize_with = "lenient")]
    pub asn: Option<Text>,
}

/// A site's certificate, in the shape the exposure report keeps it.
pub use scry_core::exposure::Certificate;

/// `data` of `GET /v2/domain/report/{id}` (and the 2022 / 2024 v1 shapes).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct DomainReport {
    #[serde(deserialize_with = "lenient")]
    pub summary: Option<DomainSummary>,
    #[serde(deserialize_with = "lenient")]
    pub main_domain_info: Option<MainDomainInfo>,
    #[serde(deserialize_with = "lenient_list")]
    pub mapped_ip: Vec<MappedIp>,
    #[serde(deserialize_with = "lenient_list")]
    pub connected_ip: Vec<MappedIp>,
    #[serde(deserialize_with = "lenient_list")]
    pub connected_ip_info: Vec<MappedIp>,
    #[serde(deserialize_with = "lenient_list")]
    pub certificates: Vec<Certificate>,
    /// `domain_type` is a string (2022) or a list of `{name, type}` (2024).
    #[serde(deserialize_with = "lenient")]
    pub classification: Option<Value>,
    #[serde(deserialize_with = "lenient")]
    pub report_time: Option<String>,
    /// The lite scan's report gives its level here, not under `main_domain_info`.
    #[serde(deserialize_with = "lenient")]
    pub domain_score: Option<Level>,
}

/// `data` of `GET /v1/domain/quick/hash/view`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct QuickCheck {
    #[serde(deserialize_with = "lenient")]
    pub result: Option<String>,
    #[serde(rename = "type", deserialize_with = "lenient")]
    pub kind: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub reg_dtime: Option<String>,
}

/// An earlier scan in `GET /v1/domain/reports`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct EarlierScan {
    #[serde(deserialize_with = "lenient")]
    pub scan_id: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub reg_dtime: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct EarlierScans {
    #[serde(deserialize_with = "lenient_list")]
    pub reports: Vec<EarlierScan>,
}

/// `POST /v1/user/me`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Account {
    #[serde(deserialize_with = "lenient")]
    pub account_type: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub email: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub name: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub max_search: Option<Value>,
    #[serde(deserialize_with = "lenient")]
    pub last_access_date: Option<String>,
}
