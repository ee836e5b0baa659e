//! Decoding recorded answer shapes (`fixtures/`): the current IP report, the 2022 legacy report
//! with integer scores, the 2022 and 2024 domain reports, and answers with null, missing and
//! mistyped fields. Unknown fields do not matter to decoding and stay in the raw answer.

use scry_core::exposure::Exposure;
use scry_sources::criminalip::map::{Weights, domain_finding, ip_finding};
use scry_sources::criminalip::wire::{DomainReport, IpReport, Level};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture exists"))
        .expect("fixture is JSON")
}

fn ip(name: &str) -> (IpReport, scry_sources::Finding) {
    let report: IpReport = serde_json::from_value(fixture(name)).expect("decodes");
    let finding = ip_finding("198.51.100.1", &report, None, &Weights::default());
    (report, finding)
}

fn signals(finding: &scry_sources::Finding) -> Vec<(String, i32)> {
    finding
        .reasons
        .iter()
        .map(|r| (r.signal.clone(), r.points))
        .collect()
}

#[test]
fn current_ip_report() {
    let (report, finding) = ip("ip-report-current.json");
    assert_eq!(
        report.score.as_ref().and_then(|s| s.outbound),
        Some(Level::Critical)
    );
    let d = &finding.details;
    assert_eq!(
        (d["inbound"].as_str(), d["outbound"].as_str()),
        (Some("Moderate"), Some("Critical"))
    );
    assert_eq!(d["asn"], 9009);
    assert_eq!(d["as_name"], "M247");
    assert_eq!(d["country"], "RO");
    assert_eq!(d["city"], "Bucharest");
    assert_eq!(d["latitude"], 44.4268);
    let services = d["services"].as_array().expect("services");
    assert_eq!(
        services.len(),
        2,
        "the older scan of port 22 and the undecodable row are dropped: {services:?}"
    );
    assert_eq!(services[0]["product"], "OpenSSH");
    assert_eq!(
        services[1]["product"],
        Value::Null,
        "\"Unknown\" products are not shown as products"
    );
    assert_eq!(d["vulnerabilities"][0]["cve"], "CVE-2023-38408");
    assert_eq!(d["vulnerabilities"][0]["ports"], serde_json::json!([22]));
    assert_eq!(d["hostnames"], serde_json::json!(["tor-exit.example.net"]));
    assert_eq!(d["categories"], serde_json::json!(["misp", "tor"]));
    assert_eq!(
        signals(&finding),
        [
            ("outbound-score".to_owned(), 90),
            ("tor".to_owned(), 15),
            ("scanner".to_owned(), 10),
            ("ids".to_owned(), 10),
            ("c2".to_owned(), 30),
            ("remote-access".to_owned(), 5),
            ("exploitable-cve".to_owned(), 20),
            ("malicious-category".to_owned(), 15),
        ]
    );
    assert_eq!(
        finding.reasons[0].value,
        "Critical (outbound; inbound Moderate)"
    );
    for tag in [
        "c2",
        "cloud",
        "hosting",
        "ids",
        "remote-access",
        "scanner",
        "tor",
        "vulnerable",
    ] {
        assert!(
            finding.tags.iter().any(|t| t == tag),
            "{tag} in {:?}",
            finding.tags
        );
    }
    assert_eq!(
        finding.report_url.as_deref(),
        Some("https://www.criminalip.io/asset/report/198.51.100.1")
    );
}

#[test]
fn legacy_report_with_integer_scores_and_tags() {
    let (report, finding) = ip("ip-data-legacy-2022.json");
    let score = report.score.clone().expect("score");
    assert_eq!(
        (score.inbound, score.outbound),
        (Some(Level::Dangerous), Some(Level::Low)),
        "4 is Dangerous, 2 is Low"
    );
    assert_eq!(finding.reasons[0].signal, "inbound-score");
    assert_eq!(finding.reasons[0].points, 80);
    assert!(
        finding.tags.contains(&"vpn".to_owned()),
        "flags from the legacy `tags` object: {:?}",
        finding.tags
    );
    assert_eq!(finding.details["country"], "KR");
    assert!(finding.tags.contains(&"remote-access".to_owned()));
    // What every reader sees of it: the typed exposure report.
    let exposure = Exposure::read(&finding.details);
    assert_eq!(exposure.country.as_deref(), Some("KR"));
    assert_eq!(
        exposure.inbound,
        Some(scry_core::exposure::Level::Dangerous)
    );
}

#[test]
fn null_missing_and_mistyped_fields() {
    let (report, finding) = ip("ip-report-nulls.json");
    assert_eq!(report.score.as_ref().and_then(|s| s.inbound), None);
    assert_eq!(
        report.score.as_ref().and_then(|s| s.outbound),
        None,
        "an unknown level word is not a level"
    );
    assert!(finding.reasons.is_empty());
    assert!(finding.tags.is_empty());
    // An empty field is left out of the stored answer.
    assert_eq!(finding.details.get("services"), None);
    assert_eq!(finding.details.get("asn"), None);
    let exposure = Exposure::read(&finding.details);
    assert!(exposure.services.is_empty() && exposure.asn.is_none());
    let empty: IpReport = serde_json::from_str("{}").expect("an empty object decodes");
    assert!(
        ip_finding("198.51.100.2", &empty, None, &Weights::default())
            .reasons
            .is_empty()
    );
}

#[test]
fn domain_report_2022_shape() {
    let body = fixture("domain-report-2022.json");
    let report: DomainReport = serde_json::from_value(body["data"].clone()).expect("decodes");
    let finding = domain_finding(Some(123), &report, &Weights::default());
    let d = &finding.details;
    assert_eq!(d["phishing_probability"], 52.46);
    assert_eq!(
        Exposure::read(d).connected_ips[0].asn,
        Some(4766),
        "a string ASN is read as a number"
    );
    assert_eq!(d["connected_ips"][0]["score"], "Dangerous");
    assert_eq!(
        d["countries"],
        serde_json::json!(["KR"]),
        "null countries are dropped"
    );
    for tag in ["phishing", "credential-harvesting", "impersonation", "dga"] {
        assert!(
            finding.tags.iter().any(|t| t == tag),
            "{tag} in {:?}",
            finding.tags
        );
    }
    assert!(signals(&finding).contains(&("phishing-probability".to_owned(), 25)));
    assert_eq!(
        finding.report_url.as_deref(),
        Some("https://www.criminalip.io/domain/report?scan_id=123")
    );
}

#[test]
fn domain_report_2024_shape() {
    let body = fixture("domain-report-2024.json");
    let report: DomainReport = serde_json::from_value(body["data"].clone()).expect("decodes");
    let finding = domain_finding(Some(14341560), &report, &Weights::default());
    let d = &finding.details;
    assert_eq!(d["domain_score"], "Low", "lower-case levels are read");
    assert_eq!(d["mapped_ips"][0]["ip"], "142.250.76.142");
    assert_eq!(d["mapped_ips"][0]["score"], "Low");
    assert_eq!(Exposure::read(d).connected_ips[0].asn, Some(15169));
    assert_eq!(
        d["certificates"][0]["issuer"],
        "C=US, O=Google Trust Services, CN=WR2"
    );
    assert_eq!(d["created"], "1997-09-15");
    assert_eq!(signals(&finding), [("domain-score".to_owned(), 20)]);
    assert!(finding.tags.is_empty(), "{:?}", finding.tags);
}

/// Configured weights replace the default points, signal by signal.
#[test]
fn weights_set_the_points_of_each_signal() {
    let report: IpReport =
        serde_json::from_value(fixture("ip-report-current.json")).expect("decodes");
    let weights = Weights {
        critical: 60,
        tor: 40,
        ..Weights::default()
    };
    let finding = ip_finding("198.51.100.1", &report, None, &weights);
    let points = signals(&finding);
    assert!(
        points.contains(&("outbound-score".to_owned(), 60)),
        "{points:?}"
    );
    assert!(points.contains(&("tor".to_owned(), 40)), "{points:?}");
    assert!(points.contains(&("scanner".to_owned(), 10)), "{points:?}");
}
