//! Pivots: what an indicator shares with others, so an analyst can ask "what else is in this ASN,
//! exposes this CVE, sits in this /24, resolves to this IP?".
//!
//! [`facets`] reads them off a result record (pure): the indicator's own /24 (IPv4) or /48 (IPv6),
//! and from the sources' details its ASN, country, CVEs, exposed services, certificate subjects,
//! reverse-DNS hostnames, registrable domain and the IPs a domain resolves to. The store indexes
//! them; [`Pivot`] says which facet a `--by` question matches on, and [`neighbours`] what an
//! indicator shares and with how many.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde_json::Value;

use scry_core::Facet;
use scry_core::exposure::Exposure;

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
    /// The facet whose values the pivot starts from on the indicator asked about (`None`: the
    /// indicator's own value), and the facet other indicators are matched on.
    pub fn facets(self, is_ip: bool) -> (Option<Facet>, Facet) {
        let same = |facet| (Some(facet), facet);
        match self {
            Pivot::Asn => same(Facet::Asn),
            Pivot::Cve => same(Facet::Cve),
            Pivot::Country => same(Facet::Country),
            Pivot::Subnet => same(Facet::Subnet),
            Pivot::Certificate => same(Facet::Certificate),
            Pivot::Service => same(Facet::Service),
            // Domains resolving to this IP carry a `resolves-to` facet with the IP's value.
            Pivot::Domain if is_ip => (None, Facet::ResolvesTo),
            Pivot::Domain => same(Facet::Registrable),
        }
    }
}

/// One page of a pivot: the values the indicator has of the pivot's facet, what shares one of
/// them (highest priority first), and where the next page starts when this one is full.
pub struct PivotPage {
    pub values: Vec<String>,
    /// The facet other indicators were matched on.
    pub matched: Facet,
    pub rows: Vec<(scry_store::StoredIndicator, String)>,
    pub next: Option<scry_store::PivotCursor>,
}

/// What shares `by` with a stored indicator: one page, as `scry pivot` and the API list it.
pub async fn page(
    store: &dyn scry_store::Store,
    stored: &scry_store::StoredIndicator,
    by: Pivot,
    min_priority: u8,
    after: Option<&scry_store::PivotCursor>,
    limit: u32,
) -> Result<PivotPage, scry_store::StoreError> {
    let (from, matched) = by.facets(stored.record.kind.starts_with("ipv"));
    let values: Vec<String> = match from {
        None => vec![stored.record.value.clone()],
        Some(from) => stored
            .record
            .facets
            .iter()
            .filter(|(f, _)| *f == from)
            .map(|(_, v)| v.clone())
            .collect(),
    };
    let rows = store
        .sharing(
            matched,
            &values,
            &stored.record.stix_id,
            min_priority,
            after,
            limit,
        )
        .await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last())
        .flatten()
        .map(|(last, _)| scry_store::PivotCursor {
            priority: last.record.priority,
            stix_id: last.record.stix_id.clone(),
        });
    Ok(PivotPage {
        values,
        matched,
        rows,
        next,
    })
}

/// Every (facet, value) a record has.
pub fn facets(record: &Record) -> Vec<(Facet, String)> {
    let mut out: Vec<(Facet, String)> = Vec::new();
    let mut add = |facet: Facet, value: String| {
        if !value.is_empty() {
            out.push((facet, value));
        }
    };
    if let Some(indicator) = &record.indicator
        && let Ok(ip) = indicator.parse::<IpAddr>()
    {
        let prefix = if ip.is_ipv4() { 24 } else { 48 };
        if let Ok(net) = IpNet::new(ip, prefix) {
            add(Facet::Subnet, net.trunc().to_string());
        }
    }
    for source in record.sources.values() {
        let data = &source.data;
        // Criminal IP's and its offline database's reports, and the offline network data,
        // share these fields.
        let exposure = Exposure::read(data);
        if let Some(asn) = exposure.asn {
            add(Facet::Asn, asn.to_string());
        }
        for country in exposure.country.iter().chain(&exposure.countries) {
            add(Facet::Country, country.to_ascii_uppercase());
        }
        for cve in exposure
            .vulnerabilities
            .iter()
            .filter_map(|v| v.cve.as_ref())
        {
            add(Facet::Cve, cve.to_ascii_uppercase());
        }
        for service in &exposure.services {
            if let Some(port) = service.port {
                let protocol = service
                    .protocol
                    .as_deref()
                    .unwrap_or("unknown")
                    .to_ascii_lowercase();
                add(Facet::Service, format!("{port}/{protocol}"));
            }
        }
        for subject in exposure
            .certificates
            .iter()
            .filter_map(|c| c.subject.as_ref())
        {
            add(Facet::Certificate, subject.clone());
        }
        for hostname in &exposure.hostnames {
            add(Facet::Hostname, hostname.to_ascii_lowercase());
        }
        for mapped in &exposure.mapped_ips {
            if let Some(ip) = &mapped.ip {
                add(Facet::ResolvesTo, ip.clone());
            }
            if let Some(asn) = mapped.asn {
                add(Facet::Asn, asn.to_string());
            }
        }
        let host = data.get("host_details").unwrap_or(data);
        if let Some(registrable) = host.get("registrable_domain").and_then(Value::as_str) {
            add(Facet::Registrable, registrable.to_owned());
        }
    }
    out.sort();
    out.dedup();
    // Graph hygiene: one answer listing thousands of hostnames or CVEs does not fan out into
    // thousands of index rows; the full lists stay in the stored answer.
    let mut kept = 0;
    let mut previous: Option<Facet> = None;
    out.retain(|(facet, _)| {
        if previous != Some(*facet) {
            previous = Some(*facet);
            kept = 0;
        }
        kept += 1;
        kept <= MAX_VALUES_PER_FACET
    });
    out
}

/// At most this many values of one facet per indicator (`asn`, `cve`, `hostname`, …).
pub const MAX_VALUES_PER_FACET: usize = 100;

/// Count other indicators sharing a neighbour up to this many ("1000+ others").
pub const NEIGHBOUR_COUNT_CAP: u64 = 1_000;
/// Values of one facet are listed (the rest are counted in a last line).
pub const NEIGHBOURS_PER_FACET: usize = 10;

/// How a neighbour is linked to the indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Both have this facet's value.
    Shares(Facet),
    /// Stored domains resolve to the address (their `resolves-to` facet names it).
    ResolvedBy,
}

impl Link {
    /// The link's word: the facet's, or `resolved-by`.
    pub fn as_str(self) -> &'static str {
        match self {
            Link::Shares(facet) => facet.as_str(),
            Link::ResolvedBy => "resolved-by",
        }
    }
}

impl std::fmt::Display for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an indicator is linked to, and how many other stored indicators share each link.
pub struct Neighbour {
    pub link: Link,
    pub value: String,
    /// Up to `NEIGHBOUR_COUNT_CAP + 1`.
    pub others: u64,
}

/// The neighbours `scry show` and the API list: each facet value (at most
/// [`NEIGHBOURS_PER_FACET`] of a kind, the rest counted), with how many others share it, and for
/// an address the stored domains resolving to it. Every count is an index range of bounded size.
pub async fn neighbours(
    store: &dyn scry_store::Store,
    stored: &scry_store::StoredIndicator,
) -> Result<Vec<Neighbour>, scry_store::StoreError> {
    let r = &stored.record;
    let mut links: Vec<(Facet, String)> = Vec::new();
    let mut per_facet: std::collections::BTreeMap<Facet, usize> = Default::default();
    for (facet, value) in &r.facets {
        let shown = per_facet.entry(*facet).or_default();
        *shown += 1;
        if *shown <= NEIGHBOURS_PER_FACET {
            links.push((*facet, value.clone()));
        }
    }
    let mut out = Vec::new();
    for (facet, value) in links {
        let others = store
            .count_sharing(facet, &value, &r.stix_id, NEIGHBOUR_COUNT_CAP + 1)
            .await?;
        out.push(Neighbour {
            link: Link::Shares(facet),
            value,
            others,
        });
    }
    for (facet, shown) in per_facet {
        if shown > NEIGHBOURS_PER_FACET {
            out.push(Neighbour {
                link: Link::Shares(facet),
                value: format!("… and {} more", shown - NEIGHBOURS_PER_FACET),
                others: 0,
            });
        }
    }
    // Domains that resolve to this address point at it from their side.
    if r.kind.starts_with("ipv") {
        let domains = store
            .count_sharing(
                Facet::ResolvesTo,
                &r.value,
                &r.stix_id,
                NEIGHBOUR_COUNT_CAP + 1,
            )
            .await?;
        if domains > 0 {
            out.push(Neighbour {
                link: Link::ResolvedBy,
                value: if domains > NEIGHBOUR_COUNT_CAP {
                    format!("{NEIGHBOUR_COUNT_CAP}+ stored domains resolve to it (--by domain)")
                } else {
                    format!("{domains} stored domain(s) resolve to it (--by domain)")
                },
                others: 0,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facets_are_read_from_sources_and_capped_per_kind() {
        let hostnames: Vec<String> = (0..500).map(|i| format!("h{i:03}.example.net")).collect();
        let record: Record = serde_json::from_value(serde_json::json!({
            "input": "45.155.205.233", "indicator": "45.155.205.233", "type": "ipv4-addr",
            "status": "enriched", "skip_reason": null, "error": null, "priority": 90,
            "severity": "critical", "reasons": [], "tags": [], "stix_id": "ipv4-addr--x",
            "tlp": null, "position": "-:1", "context": null,
            "sources": {"criminalip": {"status": "ok", "data": {
                "asn": 9009, "country": "ro", "hostnames": hostnames,
                "vulnerabilities": [{"cve": "cve-2023-38408"}],
                "services": [{"port": 22, "protocol": "SSH"}],
            }}},
        }))
        .expect("record");
        let facets = facets(&record);
        let count = |kind: Facet| facets.iter().filter(|(f, _)| *f == kind).count();
        assert_eq!(count(Facet::Hostname), MAX_VALUES_PER_FACET);
        for (kind, value) in [
            (Facet::Asn, "9009"),
            (Facet::Country, "RO"),
            (Facet::Cve, "CVE-2023-38408"),
            (Facet::Service, "22/ssh"),
            (Facet::Subnet, "45.155.205.0/24"),
        ] {
            assert!(
                facets.contains(&(kind, value.to_owned())),
                "{kind} {value} in {facets:?}"
            );
        }
    }
}
