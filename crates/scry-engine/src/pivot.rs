//! Pivots: what an indicator shares with others, so an analyst can ask "what else is in this ASN,
//! exposes this CVE, sits in this /24, resolves to this IP?".
//!
//! [`facets`] reads them off a result record (pure): the indicator's own /24 (IPv4) or /48 (IPv6),
//! and from the sources' details its ASN, country, CVEs, exposed services, certificate subjects,
//! reverse-DNS hostnames, registrable domain and the IPs a domain resolves to. The store indexes
//! them; [`Pivot`] says which facet a `--by` question matches on.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde_json::Value;

use crate::record::Record;

/// What `scry pivot --by` can ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pivot {
    Asn,
    Cve,
    Country,
    Subnet,
    Certificate,
    Service,
    /// For an IP: the domains resolving to it; for a name: the others under its registrable domain.
    Domain,
}

impl FromStr for Pivot {
    type Err = String;

    fn from_str(s: &str) -> Result<Pivot, String> {
        match s {
            "asn" => Ok(Pivot::Asn),
            "cve" => Ok(Pivot::Cve),
            "country" => Ok(Pivot::Country),
            "subnet" => Ok(Pivot::Subnet),
            "certificate" => Ok(Pivot::Certificate),
            "service" => Ok(Pivot::Service),
            "domain" => Ok(Pivot::Domain),
            other => Err(format!(
                "unknown pivot {other:?} (expected asn, cve, country, subnet, certificate, service or domain)"
            )),
        }
    }
}

impl Pivot {
    /// The facet whose values the pivot starts from (on the indicator asked about), and the facet
    /// other indicators are matched on.
    pub fn facets(self, is_ip: bool) -> (&'static str, &'static str) {
        match self {
            Pivot::Asn => ("asn", "asn"),
            Pivot::Cve => ("cve", "cve"),
            Pivot::Country => ("country", "country"),
            Pivot::Subnet => ("subnet", "subnet"),
            Pivot::Certificate => ("certificate", "certificate"),
            Pivot::Service => ("service", "service"),
            // Domains resolving to this IP carry a `resolves-to` facet with the IP's value.
            Pivot::Domain if is_ip => ("self", "resolves-to"),
            Pivot::Domain => ("registrable", "registrable"),
        }
    }
}

/// Every (facet, value) a record has.
pub fn facets(record: &Record) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut add = |facet: &str, value: String| {
        if !value.is_empty() {
            out.push((facet.to_owned(), value));
        }
    };
    if let Some(indicator) = &record.indicator
        && let Ok(ip) = indicator.parse::<IpAddr>()
    {
        let prefix = if ip.is_ipv4() { 24 } else { 48 };
        if let Ok(net) = IpNet::new(ip, prefix) {
            add("subnet", net.trunc().to_string());
        }
    }
    for source in record.sources.values() {
        let data = &source.data;
        let text = |v: &Value| {
            v.as_str()
                .map(str::to_owned)
                .or_else(|| v.as_u64().map(|n| n.to_string()))
        };
        if let Some(asn) = data.get("asn").and_then(text) {
            add("asn", asn);
        }
        if let Some(country) = data.get("country").and_then(Value::as_str) {
            add("country", country.to_ascii_uppercase());
        }
        for country in data
            .get("countries")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            add("country", country.to_ascii_uppercase());
        }
        for v in data
            .get("vulnerabilities")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(cve) = v.get("cve").and_then(Value::as_str) {
                add("cve", cve.to_ascii_uppercase());
            }
        }
        for s in data
            .get("services")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(port) = s.get("port").and_then(Value::as_u64) {
                let protocol = s
                    .get("protocol")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_ascii_lowercase();
                add("service", format!("{port}/{protocol}"));
            }
        }
        for c in data
            .get("certificates")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(subject) = c.get("subject").and_then(Value::as_str) {
                add("certificate", subject.to_owned());
            }
        }
        for h in data
            .get("hostnames")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            add("hostname", h.to_ascii_lowercase());
        }
        for m in data
            .get("mapped_ips")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(ip) = m.get("ip").and_then(Value::as_str) {
                add("resolves-to", ip.to_owned());
            }
            if let Some(asn) = m.get("asn").and_then(text) {
                add("asn", asn);
            }
        }
        let host = data.get("host_details").unwrap_or(data);
        if let Some(registrable) = host.get("registrable_domain").and_then(Value::as_str) {
            add("registrable", registrable.to_owned());
        }
    }
    out.sort();
    out.dedup();
    out
}
