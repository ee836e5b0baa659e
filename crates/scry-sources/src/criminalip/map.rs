//! What Criminal IP answers mean for an analyst: reasons with points, labels, and the details
//! shown under `sources.criminalip` (pure functions over decoded answers).
//!
//! The base of an indicator's points is the worse of its inbound and outbound levels (by default
//! Critical 90, Dangerous 80, Moderate 50, Low 20, Safe 0) and the reason says which side it came
//! from; other signals add to it, each by its configurable [`Weights`]. Labels name a property, never a value (`tor`, not `tor-exit-1.2.3.4`).

use std::collections::{BTreeMap, BTreeSet};

use scry_core::Reason;
use scry_core::exposure::{self, Exposure, Host, Service};

use super::wire::{
    DomainReport, IpReport, Level, MaliciousInfo, MappedIp, Port, Text, Vulnerability, Whois,
};
use crate::Finding;

pub(crate) const SOURCE: &str = "criminalip";

/// How many points each Criminal IP signal adds to the priority (`[sources.criminalip.weights]`).
/// The defaults are documented in `scry config init`'s example; a level's points are the base of
/// the priority, every other signal adds to it, and the sum is clamped to 0–100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Weights {
    pub critical: i32,
    pub dangerous: i32,
    pub moderate: i32,
    pub low: i32,
    pub safe: i32,
    pub tor: i32,
    pub anonymous_vpn: i32,
    pub vpn: i32,
    pub proxy: i32,
    pub darkweb: i32,
    pub scanner: i32,
    pub ids: i32,
    pub c2: i32,
    pub remote_access: i32,
    pub malicious_category: i32,
    pub malicious_info: i32,
    /// An exposed CVE with CVSS ≥ 9.0.
    pub cve_critical: i32,
    /// … ≥ 7.0.
    pub cve_high: i32,
    /// … ≥ 4.0.
    pub cve_medium: i32,
    /// Phishing probability ≥ 80 %.
    pub phishing_high: i32,
    /// … ≥ 50 %.
    pub phishing_medium: i32,
    /// … ≥ 20 %.
    pub phishing_low: i32,
    pub credential_input: i32,
    pub fake_domain: i32,
    pub suspicious_file: i32,
    pub phishing_record: i32,
    pub dga: i32,
    pub newborn_domain: i32,
}

impl Default for Weights {
    fn default() -> Weights {
        Weights {
            critical: 90,
            dangerous: 80,
            moderate: 50,
            low: 20,
            safe: 0,
            tor: 15,
            anonymous_vpn: 10,
            vpn: 5,
            proxy: 5,
            darkweb: 10,
            scanner: 10,
            ids: 10,
            c2: 30,
            remote_access: 5,
            malicious_category: 15,
            malicious_info: 10,
            cve_critical: 20,
            cve_high: 10,
            cve_medium: 5,
            phishing_high: 40,
            phishing_medium: 25,
            phishing_low: 10,
            credential_input: 15,
            fake_domain: 20,
            suspicious_file: 15,
            phishing_record: 10,
            dga: 10,
            newborn_domain: 5,
        }
    }
}

impl Weights {
    /// Points for a risk level.
    pub fn level(&self, level: Level) -> i32 {
        match level {
            Level::Critical => self.critical,
            Level::Dangerous => self.dangerous,
            Level::Moderate => self.moderate,
            Level::Low => self.low,
            Level::Safe => self.safe,
        }
    }
}

/// Services that give remote control of a host when exposed.
const REMOTE_ACCESS: &[&str] = &["rdp", "vnc", "telnet", "ssh", "smb", "winrm"];

/// The priority's base: the worse of the inbound and outbound levels, saying which side it came
/// from and what the other side is (`missing` when that side has no level).
pub(crate) fn worse_side_reason(
    source: &str,
    inbound: Option<Level>,
    outbound: Option<Level>,
    missing: &'static str,
    weights: &Weights,
) -> Option<Reason> {
    let (side, level, other_side, other) = if outbound >= inbound {
        ("outbound", outbound?, "inbound", inbound)
    } else {
        ("inbound", inbound?, "outbound", outbound)
    };
    let other = other.map_or(missing, Level::as_str);
    Some(Reason::new(
        source,
        &format!("{side}-score"),
        format!("{} ({side}; {other_side} {other})", level.as_str()),
        weights.level(level),
    ))
}

/// A port or file tag that names command-and-control (`C2`, `c2_…`, Cobalt Strike).
pub(crate) fn is_c2_tag(tag: &str) -> bool {
    let lower = tag.to_ascii_lowercase();
    lower == "c2" || lower.starts_with("c2_") || lower.contains("cobalt strike")
}

/// The link to Criminal IP's page for an IP.
pub fn ip_report_url(ip: &str) -> String {
    format!("https://www.criminalip.io/asset/report/{ip}")
}

/// The link to Criminal IP's page for a domain scan.
pub fn domain_report_url(scan_id: u64) -> String {
    format!("https://www.criminalip.io/domain/report?scan_id={scan_id}")
}

/// Keeps the newest record of each (port, socket): reports list historical scans too.
fn current_ports(ports: &[Port]) -> Vec<&Port> {
    let mut newest: BTreeMap<(u16, String), &Port> = BTreeMap::new();
    for port in ports {
        let Some(number) = port.open_port_no else {
            continue;
        };
        let key = (
            number,
            port.socket.clone().unwrap_or_default().to_ascii_lowercase(),
        );
        let newer = newest
            .get(&key)
            .is_none_or(|seen| port.confirmed_time > seen.confirmed_time);
        if newer {
            newest.insert(key, port);
        }
    }
    newest.into_values().collect()
}

fn known(text: &Option<String>) -> Option<&str> {
    text.as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty() && !matches!(*t, "N/A" | "Unknown" | "unknown"))
}

/// An AS number as the vendor writes it (`"4766"`, `"AS4766"`).
fn as_number(text: &Text) -> Option<u64> {
    text.0.trim().trim_start_matches("AS").trim().parse().ok()
}

/// The network and place an IP's first WHOIS row gives.
fn put_whois(exposure: &mut Exposure, whois: &Whois) {
    let filled = |text: &Option<String>| text.clone().filter(|t| !t.is_empty());
    exposure.asn = whois.as_no.as_ref().and_then(as_number);
    exposure.as_name = whois.as_name.clone();
    exposure.organization = whois.org_name.clone();
    exposure.country = whois
        .org_country_code
        .as_ref()
        .map(|c| c.to_ascii_uppercase());
    exposure.region = filled(&whois.region);
    exposure.city = filled(&whois.city);
    exposure.latitude = whois.latitude;
    exposure.longitude = whois.longitude;
}

fn vulnerability(v: &Vulnerability) -> exposure::Vulnerability {
    exposure::Vulnerability {
        cve: v.cve_id.clone(),
        cvss_v3: v.cvssv3_score,
        cvss_v2: v.cvssv2_score,
        product: v.app_name.clone(),
        version: v.app_version.clone(),
        ports: v
            .open_port_no
            .iter()
            .filter_map(|p| p.port.map(u64::from))
            .collect(),
    }
}

fn service(port: &Port) -> Service {
    Service {
        port: port.open_port_no.map(u64::from),
        transport: port.socket.as_deref().map(str::to_ascii_lowercase),
        protocol: known(&port.protocol).map(str::to_owned),
        product: known(&port.app_name).map(str::to_owned),
        version: known(&port.app_version).map(str::to_owned),
        banner: port
            .banner
            .as_deref()
            .map(|b| b.chars().take(200).collect::<String>()),
        vulnerable: port.is_vulnerability,
        tags: port.tags.clone().unwrap_or_default(),
        last_seen: port.confirmed_time.clone(),
    }
}

fn host(mapped: &MappedIp) -> Host {
    Host {
        ip: mapped.ip.clone(),
        score: mapped.score,
        asn: mapped.asn.as_ref().and_then(as_number),
        as_name: mapped.as_name.clone(),
        // Upper case, as every other country code scry keeps (the service sends `us` here).
        country: mapped
            .country
            .as_deref()
            .map(|c| c.trim().to_ascii_uppercase())
            .filter(|c| !c.is_empty()),
    }
}

/// The finding for an IP report (and malicious-info, when it was asked for).
pub fn ip_finding(
    ip: &str,
    report: &IpReport,
    malicious: Option<&MaliciousInfo>,
    weights: &Weights,
) -> Finding {
    let mut reasons = Vec::new();
    let mut tags = BTreeSet::new();
    let score = report.score.clone().unwrap_or_default();
    let (inbound, outbound) = (score.inbound, score.outbound);
    reasons.extend(worse_side_reason(
        SOURCE, inbound, outbound, "unknown", weights,
    ));

    let issues = report.issues.clone().unwrap_or_default();
    let flag = |f: &super::wire::Lenient<bool>| f.0 == Some(true);
    let flags: Vec<(&str, bool, i32, &str)> = vec![
        (
            "tor",
            flag(&issues.is_tor),
            weights.tor,
            "Tor exit or relay",
        ),
        (
            "anonymous-vpn",
            flag(&issues.is_anonymous_vpn),
            weights.anonymous_vpn,
            "anonymous VPN",
        ),
        ("vpn", flag(&issues.is_vpn), weights.vpn, "VPN"),
        ("proxy", flag(&issues.is_proxy), weights.proxy, "proxy"),
        (
            "darkweb",
            flag(&issues.is_darkweb),
            weights.darkweb,
            "seen on the dark web",
        ),
        (
            "scanner",
            flag(&issues.is_scanner),
            weights.scanner,
            "scanner",
        ),
        (
            "ids",
            flag(&issues.is_snort),
            weights.ids,
            "IDS signatures fired",
        ),
        ("hosting", flag(&issues.is_hosting), 0, "hosting"),
        ("cloud", flag(&issues.is_cloud), 0, "cloud"),
        ("mobile", flag(&issues.is_mobile), 0, "mobile network"),
    ];
    for (label, set, points, what) in &flags {
        if *set {
            tags.insert((*label).to_owned());
            if *points > 0 {
                reasons.push(Reason::new(SOURCE, label, *what, *points));
            }
        }
    }

    let ports_section = report.port.0.clone().unwrap_or_default();
    let ports = current_ports(&ports_section.data);
    let mut c2_tags = BTreeSet::new();
    let mut remote = BTreeSet::new();
    for port in &ports {
        for tag in port.tags.iter().flatten() {
            if is_c2_tag(tag) {
                c2_tags.insert(tag.clone());
            }
        }
        let protocol = known(&port.protocol).unwrap_or("").to_ascii_lowercase();
        if REMOTE_ACCESS.contains(&protocol.as_str()) {
            remote.insert(format!("{}/{}", protocol, port.open_port_no.unwrap_or(0)));
        }
    }
    if !c2_tags.is_empty() {
        tags.insert("c2".into());
        reasons.push(Reason::new(
            SOURCE,
            "c2",
            c2_tags.iter().cloned().collect::<Vec<_>>().join(", "),
            weights.c2,
        ));
    }
    let remote_access = malicious.and_then(|m| m.can_remote_access) == Some(true);
    if !remote.is_empty() || remote_access {
        tags.insert("remote-access".into());
        let value = if remote.is_empty() {
            "remote access possible".to_owned()
        } else {
            remote.iter().cloned().collect::<Vec<_>>().join(", ")
        };
        reasons.push(Reason::new(
            SOURCE,
            "remote-access",
            value,
            weights.remote_access,
        ));
    }

    let vulns = report.vulnerability.0.clone().unwrap_or_default().data;
    let worst = vulns
        .iter()
        .filter_map(|v| Some((v.cvssv3_score.or(v.cvssv2_score)?, v.cve_id.clone()?)))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((cvss, cve)) = &worst {
        let points = if *cvss >= 9.0 {
            weights.cve_critical
        } else if *cvss >= 7.0 {
            weights.cve_high
        } else if *cvss >= 4.0 {
            weights.cve_medium
        } else {
            0
        };
        if points > 0 {
            tags.insert("vulnerable".into());
            reasons.push(Reason::new(
                SOURCE,
                "exploitable-cve",
                format!("{cve} (CVSS {cvss:.1}, {} CVEs exposed)", vulns.len()),
                points,
            ));
        }
    }

    let categories: BTreeSet<String> = report
        .ip_category
        .0
        .clone()
        .unwrap_or_default()
        .data
        .iter()
        .filter_map(|c| c.kind.as_ref().map(|k| k.trim().to_ascii_lowercase()))
        .filter(|k| !k.is_empty())
        .collect();
    let malicious_categories: Vec<&String> = categories
        .iter()
        .filter(|c| {
            matches!(
                c.as_str(),
                "malware" | "phishing" | "ddos" | "botnet" | "c2" | "spam" | "misp"
            )
        })
        .collect();
    if !malicious_categories.is_empty() {
        reasons.push(Reason::new(
            SOURCE,
            "malicious-category",
            malicious_categories
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            weights.malicious_category,
        ));
    }
    for category in &categories {
        let label = category.replace(' ', "-");
        if matches!(
            label.as_str(),
            "phishing"
                | "malware"
                | "scanner"
                | "proxy"
                | "vpn"
                | "tor"
                | "ddos"
                | "botnet"
                | "spam"
        ) {
            tags.insert(label);
        }
    }
    if malicious.and_then(|m| m.is_malicious) == Some(true) {
        tags.insert("malicious".into());
        reasons.push(Reason::new(
            SOURCE,
            "malicious-info",
            "flagged malicious",
            weights.malicious_info,
        ));
    }

    let mut exposure = Exposure {
        inbound,
        outbound,
        flags: flags
            .iter()
            .filter(|f| f.1)
            .map(|f| f.0.to_owned())
            .collect(),
        services: ports.iter().map(|p| service(p)).collect(),
        vulnerabilities: vulns.iter().map(vulnerability).collect(),
        categories: categories.iter().cloned().collect(),
        hostnames: report
            .hostname
            .0
            .clone()
            .unwrap_or_default()
            .data
            .into_iter()
            .filter_map(|h| h.domain_name_full)
            .collect(),
        connected_domains: Some(
            report
                .domain
                .0
                .as_ref()
                .map_or(0, |d| d.count.0.unwrap_or(d.data.len() as u64)),
        ),
        ids_hits: Some(report.ids.0.as_ref().map_or(0, |d| d.data.len() as u64)),
        is_malicious: malicious.and_then(|m| m.is_malicious),
        can_remote_access: malicious.and_then(|m| m.can_remote_access),
        ..Exposure::default()
    };
    if let Some(first) = report.whois.0.clone().unwrap_or_default().data.first() {
        put_whois(&mut exposure, first);
    }

    Finding {
        reasons,
        tags: tags.into_iter().collect(),
        details: exposure.to_detail(),
        report_url: Some(ip_report_url(ip)),
        ..Finding::default()
    }
}

/// The finding for a domain or URL scan.
pub fn domain_finding(scan_id: Option<u64>, report: &DomainReport, weights: &Weights) -> Finding {
    let mut reasons = Vec::new();
    let mut tags = BTreeSet::new();
    let summary = report.summary.clone().unwrap_or_default();
    let main = report.main_domain_info.clone().unwrap_or_default();
    let level = main
        .domain_score
        .as_ref()
        .and_then(|s| s.score)
        .or(report.domain_score);
    if let Some(level) = level {
        reasons.push(Reason::new(
            SOURCE,
            "domain-score",
            level.as_str(),
            weights.level(level),
        ));
    }
    if let Some(probability) = summary.url_phishing_prob {
        let points = if probability >= 80.0 {
            weights.phishing_high
        } else if probability >= 50.0 {
            weights.phishing_medium
        } else if probability >= 20.0 {
            weights.phishing_low
        } else {
            0
        };
        if points > 0 {
            tags.insert("phishing".into());
            reasons.push(Reason::new(
                SOURCE,
                "phishing-probability",
                format!("{probability:.1} %"),
                points,
            ));
        }
    }
    if let Some(cred) = summary
        .cred_input
        .as_deref()
        .filter(|c| !matches!(c.to_ascii_lowercase().as_str(), "safe" | "none" | ""))
    {
        tags.insert("credential-harvesting".into());
        reasons.push(Reason::new(
            SOURCE,
            "credential-input",
            cred,
            weights.credential_input,
        ));
    }
    if summary.fake_domain == Some(true) {
        tags.insert("impersonation".into());
        reasons.push(Reason::new(
            SOURCE,
            "fake-domain",
            "imitates another domain",
            weights.fake_domain,
        ));
    }
    if let Some(files) = summary.suspicious_file.filter(|n| *n > 0) {
        tags.insert("suspicious-file".into());
        reasons.push(Reason::new(
            SOURCE,
            "suspicious-file",
            files.to_string(),
            weights.suspicious_file,
        ));
    }
    if let Some(records) = summary.phishing_record.filter(|n| *n > 0) {
        tags.insert("phishing".into());
        reasons.push(Reason::new(
            SOURCE,
            "phishing-record",
            records.to_string(),
            weights.phishing_record,
        ));
    }
    if let Some(dga) = summary.dga_score.filter(|d| *d >= 8.0) {
        tags.insert("dga".into());
        reasons.push(Reason::new(
            SOURCE,
            "dga-score",
            format!("{dga:.1}"),
            weights.dga,
        ));
    }
    if let Some(born) = summary
        .newborn_domain
        .as_deref()
        .filter(|d| !d.trim().is_empty())
    {
        tags.insert("newborn-domain".into());
        reasons.push(Reason::new(
            SOURCE,
            "newborn-domain",
            born,
            weights.newborn_domain,
        ));
    }

    let connected = if report.connected_ip_info.is_empty() {
        &report.connected_ip
    } else {
        &report.connected_ip_info
    };
    let exposure = Exposure {
        scan_id,
        domain_score: level,
        phishing_probability: summary.url_phishing_prob,
        credential_input: summary.cred_input.clone(),
        fake_domain: summary.fake_domain,
        suspicious_files: summary.suspicious_file,
        phishing_records: summary.phishing_record,
        dga_score: summary.dga_score,
        newborn_domain: summary.newborn_domain.clone(),
        created: main.domain_created.clone(),
        registrar: main.domain_registrar.clone(),
        title: main.title.clone(),
        mapped_ips: report.mapped_ip.iter().map(host).collect(),
        connected_ips: connected.iter().map(host).collect(),
        countries: summary
            .list_of_countries
            .iter()
            .flatten()
            .flatten()
            .map(|c| c.to_ascii_uppercase())
            .collect(),
        certificates: report.certificates.clone(),
        report_time: report.report_time.clone(),
        ..Exposure::default()
    };
    Finding {
        reasons,
        tags: tags.into_iter().collect(),
        details: exposure.to_detail(),
        report_url: scan_id.map(domain_report_url),
        ..Finding::default()
    }
}

/// The worst level an answer shows, for choosing how long to cache it.
pub fn worst_level(finding: &Finding) -> Option<Level> {
    let exposure = Exposure::read(&finding.details);
    [exposure.inbound, exposure.outbound, exposure.domain_score]
        .into_iter()
        .flatten()
        .max()
}
