//! The knowledge graph W5 and W6 run on, stored as scry stores an enriched one: IPv4 hosts with
//! the ASN, country, /24 and sometimes a CVE a Criminal IP answer gives them, and domains
//! resolving to some of those hosts (their answer's mapped IPs, with the ASNs). ASN and CVE sizes
//! are heavy-tailed as real ones are — a few hosting providers hold most addresses, a few CVEs are
//! everywhere — so pivots meet both hubs and singletons. Generated from a seed, saved in batches.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use scry_store::{Facet, IndicatorRecord, Store};
use serde_json::json;

use scry_bench::data::Dice;

/// Records per save.
const BATCH: usize = 500;
/// One observable in ten is a domain.
const DOMAIN_EVERY: usize = 10;
/// Hosts with a CVE, in percent.
const WITH_CVE_PERCENT: u64 = 25;

/// The generated graph: what pivots can start from.
pub(crate) struct Graph {
    /// Every host and its ASN.
    pub(crate) hosts: Vec<(String, u32)>,
    pub(crate) domains: Vec<String>,
    /// ASNs and CVEs there are to draw from (not every one is used).
    pub(crate) asns: u32,
    pub(crate) cves: u32,
    /// Facet rows stored: the graph's edges.
    pub(crate) edges: u64,
}

impl Graph {
    /// Every stored value: hosts, then domains.
    pub(crate) fn values(&self) -> impl Iterator<Item = &str> {
        self.hosts
            .iter()
            .map(|(ip, _)| ip.as_str())
            .chain(self.domains.iter().map(String::as_str))
    }
}

/// One of `n`, small numbers far likelier than large ones: `n · u^power` for a uniform `u`.
pub(crate) fn skewed(dice: &mut Dice, n: u32, power: i32) -> u32 {
    let u = (dice.next_u64() >> 11) as f64 / (1_u64 << 53) as f64;
    ((f64::from(n) * u.powi(power)) as u32).min(n - 1)
}

pub(crate) fn asn_number(index: u32) -> u32 {
    1_000 + index
}

pub(crate) fn cve_name(index: u32) -> String {
    format!("CVE-{}-{:05}", 2015 + index % 10, 10_000 + index / 10)
}

fn severity(priority: u8) -> &'static str {
    match priority {
        80.. => "critical",
        60..=79 => "high",
        40..=59 => "medium",
        20..=39 => "low",
        _ => "info",
    }
}

fn report_url(value: &str) -> String {
    format!("https://www.criminalip.io/asset/report/{value}")
}

fn host(dice: &mut Dice, ip: Ipv4Addr, asn: u32, cves: u32, now: i64) -> IndicatorRecord {
    const COUNTRIES: [&str; 8] = ["US", "DE", "RU", "CN", "NL", "FR", "BR", "KR"];
    let value = ip.to_string();
    let observable = scry_core::Observable::parse(&value).expect("an address");
    let country = COUNTRIES[dice.below(8) as usize];
    let cve = (dice.below(100) < WITH_CVE_PERCENT).then(|| cve_name(skewed(dice, cves, 2)));
    let priority = dice.below(101) as u8;
    let octets = ip.octets();
    let mut facets = vec![
        (Facet::Asn, asn.to_string()),
        (Facet::Country, country.to_owned()),
        (
            Facet::Subnet,
            format!("{}.{}.{}.0/24", octets[0], octets[1], octets[2]),
        ),
    ];
    let vulnerabilities: Vec<serde_json::Value> = cve
        .iter()
        .map(|cve| {
            facets.push((Facet::Cve, cve.clone()));
            json!({"cve": cve, "cvss_v3": 9.8, "ports": [22], "product": "OpenSSH", "version": "8.2p1"})
        })
        .collect();
    facets.sort();
    IndicatorRecord {
        stix_id: scry_stix::observable_id(&observable),
        kind: "ipv4-addr".into(),
        value: value.clone(),
        priority,
        severity: severity(priority).into(),
        enrichment_status: "enriched".into(),
        skip_reason: None,
        tlp: Some("green".into()),
        tags: vec!["scanner".into()],
        reasons: json!([{"source": "criminalip", "signal": "inbound-score", "value": "Moderate", "points": priority}]),
        sources: json!({"criminalip": {"status": "ok", "report_url": report_url(&value),
            "data": {"asn": asn, "as_name": format!("AS {asn}"), "country": country, "inbound": "Moderate", "outbound": "Low",
                "vulnerabilities": vulnerabilities}}}),
        observed_at: now,
        facets,
    }
}

fn domain(
    dice: &mut Dice,
    name: String,
    resolves_to: &[(String, u32)],
    now: i64,
) -> IndicatorRecord {
    let observable = scry_core::Observable::parse(&name).expect("a domain");
    let priority = dice.below(101) as u8;
    let mut facets = vec![(Facet::Registrable, name.clone())];
    for (ip, asn) in resolves_to {
        facets.push((Facet::ResolvesTo, ip.clone()));
        facets.push((Facet::Asn, asn.to_string()));
    }
    facets.sort();
    facets.dedup();
    let mapped: Vec<serde_json::Value> = resolves_to
        .iter()
        .map(|(ip, asn)| json!({"ip": ip, "asn": asn}))
        .collect();
    IndicatorRecord {
        stix_id: scry_stix::observable_id(&observable),
        kind: "domain-name".into(),
        value: name.clone(),
        priority,
        severity: severity(priority).into(),
        enrichment_status: "enriched".into(),
        skip_reason: None,
        tlp: Some("green".into()),
        tags: vec![],
        reasons: json!([{"source": "criminalip", "signal": "domain-score", "value": "Moderate", "points": priority}]),
        sources: json!({"criminalip": {"status": "ok", "report_url": report_url(&name),
            "data": {"mapped_ips": mapped, "registrable_domain": name}}}),
        observed_at: now,
        facets,
    }
}

/// Stores `observables` indicators — nine hosts to a domain — over `observables / 5` ASNs and
/// `observables / 20` CVEs (200 k and 50 k at a million): about 3.4 edges per observable.
pub(crate) async fn generate(
    store: &dyn Store,
    observables: usize,
    seed: u64,
    now: i64,
) -> anyhow::Result<Graph> {
    let mut dice = Dice::new(seed);
    let asns = (observables / 5).max(1) as u32;
    let cves = (observables / 20).max(1) as u32;
    let mut graph = Graph {
        hosts: Vec::with_capacity(observables),
        domains: Vec::with_capacity(observables / DOMAIN_EVERY),
        asns,
        cves,
        edges: 0,
    };
    let mut seen_hosts: HashSet<Ipv4Addr> = HashSet::with_capacity(observables);
    let mut seen_domains: HashSet<String> = HashSet::new();
    let mut batch = Vec::with_capacity(BATCH);
    let mut made = 0;
    while made < observables {
        let record = if made % DOMAIN_EVERY == DOMAIN_EVERY - 1 && !graph.hosts.is_empty() {
            let name = dice.domain();
            if !seen_domains.insert(name.clone()) {
                continue;
            }
            let resolves_to: Vec<(String, u32)> = (0..1 + dice.below(3))
                .map(|_| graph.hosts[dice.below(graph.hosts.len() as u64) as usize].clone())
                .collect();
            graph.domains.push(name.clone());
            domain(&mut dice, name, &resolves_to, now)
        } else {
            let ip = dice.ipv4();
            if !seen_hosts.insert(ip) {
                continue;
            }
            let asn = asn_number(skewed(&mut dice, asns, 3));
            graph.hosts.push((ip.to_string(), asn));
            host(&mut dice, ip, asn, cves, now)
        };
        graph.edges += record.facets.len() as u64;
        batch.push(record);
        made += 1;
        if batch.len() == BATCH {
            store.save_indicators(&batch).await?;
            batch.clear();
        }
    }
    store.save_indicators(&batch).await?;
    Ok(graph)
}
