//! The offline `ctidb` source: Criminal IP's downloadable databases — the `.ctidb` tree format
//! and the packed `.bin` format (layouts v1 and v2) — asked on this machine. A file is recognised
//! by its content, not its name. Nothing leaves the machine and nothing is paid for.
//!
//! Both formats answer in the vendor readers' field names; [`finding`] turns either answer into
//! the reasons, labels and details the Criminal IP API gives, with the same weights: the 0–5
//! inbound and outbound scores become the API's five levels (1 Safe … 5 Critical; 0 is "not
//! scored"), the flags become the same labels, and CVEs, ports, products and hostnames go where
//! the API's go, so the knowledge graph, pivots and rules treat them alike.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use scry_core::calendar::date_text;
use scry_core::exposure::{Certificate, Exposure, OfflineDatabase, Service, Vulnerability};
use scry_core::{Cleared, Destination, Observable, Reason};
use scry_offline::ctidb::CtiDb;
use scry_offline::ctidb_bin::{self, PackedDb, Verification};
use serde_json::Value;

use crate::criminalip::map::{Weights, ip_report_url, is_c2_tag, worse_side_reason};
use crate::criminalip::wire::Level;
use crate::{EnrichOptions, Finding, Source, SourceError, SourceFuture, address_of};

const SOURCE: &str = "ctidb";

/// Open ports that give remote control of a host, by the service usually behind them.
const REMOTE_ACCESS_PORTS: &[(u64, &str)] = &[
    (22, "ssh"),
    (23, "telnet"),
    (445, "smb"),
    (3389, "rdp"),
    (5900, "vnc"),
    (5985, "winrm"),
    (5986, "winrm"),
];

enum Database {
    Tree(CtiDb<memmap2::Mmap>),
    Packed(PackedDb<memmap2::Mmap>),
}

/// Why a CTIDB file cannot be opened or asked.
#[derive(Debug, thiserror::Error)]
pub enum CtidbError {
    #[error(transparent)]
    Tree(#[from] scry_offline::ctidb::CtiError),
    #[error(transparent)]
    Packed(#[from] ctidb_bin::PackedError),
}

/// The source named `ctidb`.
pub struct Ctidb {
    database: Database,
    path: PathBuf,
    weights: Weights,
    /// What the file says about itself, shown with every answer.
    about: OfflineDatabase,
}

impl std::fmt::Debug for Ctidb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctidb")
            .field("path", &self.path)
            .field("about", &self.about)
            .finish_non_exhaustive()
    }
}

impl Ctidb {
    /// Opens the database at `path`, either format. A packed file's licence signature is
    /// checked with Criminal IP's published key unless `CTIDB_SKIP_SIGNATURE_VERIFY` is set.
    pub fn open(path: &Path, weights: Weights) -> Result<Ctidb, CtidbError> {
        let mut head = [0u8; 8];
        let starts_packed = std::fs::File::open(path)
            .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut head))
            .map(|()| &head == ctidb_bin::MAGIC)
            .unwrap_or(false);
        let mut about = OfflineDatabase::default();
        let database = if starts_packed {
            let verification = Verification::from_env();
            if verification == Verification::Skip {
                tracing::warn!(
                    path = %path.display(),
                    "{} is set: the CTIDB licence signature is not checked",
                    ctidb_bin::SKIP_VERIFY_ENV
                );
            }
            let db = PackedDb::open(path, &verification)?;
            let metadata = db.metadata();
            about.format = Some("packed".into());
            about.layout = Some(format!("{}.{}", metadata.version.0, metadata.version.1));
            if let Some(license) = &metadata.license {
                about.plan = Some(license.plan_name().into());
                about.data_as_of = Some(date_text(license.issued_at.saturating_mul(1000) as i64));
            }
            Database::Packed(db)
        } else {
            let db = CtiDb::open(path)?;
            let metadata = db.metadata();
            about.format = Some("ctidb".into());
            about.tier = Some(u64::from(metadata.tier()));
            about.data_as_of = Some(date_text(metadata.build_epoch.saturating_mul(1000) as i64));
            Database::Tree(db)
        };
        Ok(Ctidb {
            database,
            path: path.to_owned(),
            weights,
            about,
        })
    }

    /// The vendor reader's answer for `address`, or `None`.
    pub fn lookup(&self, address: IpAddr) -> Result<Option<Value>, CtidbError> {
        Ok(match &self.database {
            Database::Tree(db) => db.lookup(address)?,
            Database::Packed(db) => db.lookup(address)?,
        })
    }

    fn holds_ipv6(&self) -> bool {
        matches!(&self.database, Database::Tree(db) if db.metadata().ip_version == 6)
    }
}

/// A 0–5 CTIDB score as a level; 0 (and anything else) is "not scored".
fn level(value: Option<&Value>) -> Option<Level> {
    match value?.as_u64()? {
        1 => Some(Level::Safe),
        2 => Some(Level::Low),
        3 => Some(Level::Moderate),
        4 => Some(Level::Dangerous),
        5 => Some(Level::Critical),
        _ => None,
    }
}

fn texts(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(Value::String(s)) if !s.trim().is_empty() => vec![s.trim().to_owned()],
        _ => Vec::new(),
    }
}

/// What a CTIDB answer (either format) means, in the Criminal IP API's terms.
pub fn finding(record: &Value, weights: &Weights) -> Finding {
    finding_from(record, weights, None)
}

/// [`finding`], its report naming the database that answered.
fn finding_from(record: &Value, weights: &Weights, database: Option<&OfflineDatabase>) -> Finding {
    // `.ctidb` keeps the fraud flags under `etcs`; the packed format at the top.
    let flag = |key: &str| {
        record.get(key) == Some(&Value::Bool(true))
            || record.get("etcs").and_then(|e| e.get(key)) == Some(&Value::Bool(true))
    };
    let mut reasons = Vec::new();
    let mut tags = BTreeSet::new();
    let (inbound, outbound) = (
        level(record.get("inbound_score")),
        level(record.get("outbound_score")),
    );
    if let Some(base) = worse_side_reason(SOURCE, inbound, outbound, "not scored", weights) {
        reasons.push(base);
    } else if flag("score") {
        reasons.push(Reason::new(
            SOURCE,
            "score",
            "Critical (inbound or outbound score at its highest)",
            weights.critical,
        ));
    }
    let flags: [(&str, &[&str], i32, &str); 10] = [
        ("tor", &["is_tor"], weights.tor, "Tor exit or relay"),
        ("vpn", &["is_vpn"], weights.vpn, "VPN"),
        ("proxy", &["is_proxy"], weights.proxy, "proxy"),
        (
            "c2",
            &["is_c2", "C2"],
            weights.c2,
            "command-and-control server",
        ),
        (
            "honeypot",
            &["is_honeypot", "botnet"],
            weights.scanner,
            "caught by Criminal IP's honeypots",
        ),
        (
            "abuse",
            &["abuse_record"],
            weights.malicious_info,
            "abuse reports on record",
        ),
        (
            "botnet",
            &["mobile_botnet"],
            weights.malicious_category,
            "mobile botnet",
        ),
        ("hosting", &["is_hosting"], 0, "hosting"),
        ("cloud", &["is_cloud"], 0, "cloud"),
        ("mobile", &["is_mobile"], 0, "mobile network"),
    ];
    let mut labels = Vec::new();
    for (label, keys, points, what) in flags {
        if keys.iter().any(|key| flag(key)) {
            labels.push(label);
            tags.insert(label.to_owned());
            if points > 0 {
                reasons.push(Reason::new(SOURCE, label, what, points));
            }
        }
    }
    if flag("is_cdn") {
        labels.push("cdn");
        tags.insert("cdn".into());
    }

    let file_tags = texts(record.get("tags"));
    let c2_tags: Vec<&String> = file_tags.iter().filter(|t| is_c2_tag(t)).collect();
    if !c2_tags.is_empty() && !tags.contains("c2") {
        tags.insert("c2".into());
        let value = c2_tags
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        reasons.push(Reason::new(SOURCE, "c2", value, weights.c2));
    }

    let cves: Vec<String> = texts(record.get("cve"))
        .into_iter()
        .filter(|c| c.to_ascii_uppercase().starts_with("CVE-"))
        .collect();
    if !cves.is_empty() {
        tags.insert("vulnerable".into());
        let shown = cves.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
        reasons.push(Reason::new(
            SOURCE,
            "exposed-cve",
            format!(
                "{shown} ({} CVEs exposed; the file gives no CVSS)",
                cves.len()
            ),
            weights.cve_medium,
        ));
    } else if flag("has_cve") || record.get("cve") == Some(&Value::Bool(true)) {
        tags.insert("vulnerable".into());
        reasons.push(Reason::new(
            SOURCE,
            "exposed-cve",
            "CVEs exposed",
            weights.cve_medium,
        ));
    }

    let ports: Vec<u64> = record
        .get("open_ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .collect();
    let remote: Vec<String> = ports
        .iter()
        .filter_map(|port| {
            REMOTE_ACCESS_PORTS
                .iter()
                .find(|(p, _)| p == port)
                .map(|(p, name)| format!("{name}/{p}"))
        })
        .collect();
    if !remote.is_empty() {
        tags.insert("remote-access".into());
        reasons.push(Reason::new(
            SOURCE,
            "remote-access",
            remote.join(", "),
            weights.remote_access,
        ));
    }

    let text = |key: &str| {
        record
            .get(key)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    };
    let mut hostnames = Vec::new();
    for key in ["hostname", "representative_domain"] {
        for name in texts(record.get(key)) {
            if !hostnames.contains(&name) {
                hostnames.push(name);
            }
        }
    }
    let exposure = Exposure {
        inbound,
        outbound,
        flags: labels.iter().map(|l| (*l).to_owned()).collect(),
        as_name: text("as_name"),
        city: text("city"),
        country: text("country_code").map(|c| c.to_ascii_uppercase()),
        // The file lists ports and products without pairing them.
        services: ports
            .iter()
            .map(|port| Service {
                port: Some(*port),
                ..Service::default()
            })
            .chain(
                texts(record.get("products"))
                    .into_iter()
                    .map(|product| Service {
                        product: Some(product),
                        ..Service::default()
                    }),
            )
            .collect(),
        vulnerabilities: cves
            .iter()
            .map(|cve| Vulnerability {
                cve: Some(cve.clone()),
                ..Vulnerability::default()
            })
            .collect(),
        hostnames,
        certificates: texts(record.get("ssl_certificate"))
            .into_iter()
            .map(|name| Certificate {
                subject: Some(name),
                ..Certificate::default()
            })
            .collect(),
        tags: file_tags.clone(),
        database: database.cloned(),
        ..Exposure::default()
    };
    for tag in file_tags {
        let label = tag.to_ascii_lowercase().replace(' ', "-");
        if !label.is_empty() {
            tags.insert(label);
        }
    }
    Finding {
        reasons,
        tags: tags.into_iter().collect(),
        details: exposure.to_detail(),
        raw: vec![("lookup".into(), record.clone())],
        ..Finding::default()
    }
}

impl Source for Ctidb {
    fn name(&self) -> &str {
        SOURCE
    }

    fn destination(&self) -> Destination {
        Destination::Local
    }

    fn supports(&self, observable: &Observable) -> bool {
        address_of(observable).is_some_and(|ip| {
            scry_core::ip::classify(ip).is_public() && (ip.is_ipv4() || self.holds_ipv6())
        })
    }

    fn enrich<'a>(
        &'a self,
        indicator: Cleared<'a>,
        _options: EnrichOptions,
    ) -> SourceFuture<'a, Result<Finding, SourceError>> {
        let answer = match address_of(indicator.observable()) {
            Some(address) => self.lookup(address),
            None => Ok(None),
        };
        let result = answer
            .map_err(|e| SourceError::Failed(format!("{}: {e}", self.path.display())))
            .map(|record| {
                match (record, address_of(indicator.observable())) {
                    (Some(record), Some(address)) => Finding {
                        report_url: Some(ip_report_url(&address.to_string())),
                        ..finding_from(&record, &self.weights, Some(&self.about))
                    },
                    // No entry: the answer still says which database was asked.
                    _ => Finding {
                        details: Exposure {
                            database: Some(self.about.clone()),
                            ..Exposure::default()
                        }
                        .to_detail(),
                        ..Finding::default()
                    },
                }
            });
        Box::pin(async move { result })
    }

    fn check(&self) -> SourceFuture<'_, Result<String, SourceError>> {
        let about = &self.about;
        let field = |value: &Option<String>| value.clone().unwrap_or_else(|| "unknown".into());
        let text = format!(
            "offline Criminal IP database {} ({} format, data as of {})",
            self.path.display(),
            field(&about.format),
            field(&about.data_as_of),
        );
        Box::pin(async move { Ok(text) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn signals(finding: &Finding) -> Vec<(&str, &str, i32)> {
        finding
            .reasons
            .iter()
            .map(|r| (r.signal.as_str(), r.value.as_str(), r.points))
            .collect()
    }

    #[test]
    fn a_ctidb_tree_answer_reads_like_the_api() {
        // The shape `.ctidb` files give: a score flag, fraud flags under `etcs`, `C2`, `botnet`.
        let record = json!({
            "country_code": "kr", "as_name": "Example Telecom", "score": true, "C2": true,
            "botnet": true, "abuse_record": false, "cve": true, "open_ports": [3389, 80],
            "tags": ["C2", "Scanner"], "ssl_certificate": ["CN=x"],
            "etcs": {"is_tor": true, "is_vpn": false, "is_mobile": true}
        });
        let finding = finding(&record, &Weights::default());
        assert_eq!(
            signals(&finding),
            [
                (
                    "score",
                    "Critical (inbound or outbound score at its highest)",
                    90
                ),
                ("tor", "Tor exit or relay", 15),
                ("c2", "command-and-control server", 30),
                ("honeypot", "caught by Criminal IP's honeypots", 10),
                ("exposed-cve", "CVEs exposed", 5),
                ("remote-access", "rdp/3389", 5),
            ]
        );
        assert_eq!(
            finding.tags,
            [
                "c2",
                "honeypot",
                "mobile",
                "remote-access",
                "scanner",
                "tor",
                "vulnerable"
            ]
        );
        assert_eq!(finding.details["country"], "KR");
        assert_eq!(finding.details["inbound"], Value::Null);
        assert_eq!(
            finding.details["services"],
            json!([{"port": 3389}, {"port": 80}])
        );
    }

    #[test]
    fn scores_of_zero_are_not_scored_and_the_worse_side_leads() {
        let weights = Weights::default();
        let quiet = finding(&json!({"outbound_score": 0, "inbound_score": 0}), &weights);
        assert!(quiet.reasons.is_empty());
        let inbound = finding(&json!({"outbound_score": 2, "inbound_score": 4}), &weights);
        assert_eq!(
            signals(&inbound),
            [("inbound-score", "Dangerous (inbound; outbound Low)", 80)]
        );
        let one_side = finding(&json!({"outbound_score": 3, "inbound_score": 0}), &weights);
        assert_eq!(
            signals(&one_side),
            [(
                "outbound-score",
                "Moderate (outbound; inbound not scored)",
                50
            )]
        );
    }
}
