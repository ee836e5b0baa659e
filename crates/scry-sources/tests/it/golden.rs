//! Golden files: every recorded Criminal IP answer shape, mapped to findings and then to a STIX
//! bundle, must give exactly the bundle in `golden/`. The same files are what CI runs the OASIS
//! validator on (`stix2_validator --strict`), so a mapping change that breaks STIX fails there.
//!
//! After an intended change to the mapping, regenerate them with
//! `SCRY_UPDATE_GOLDEN=1 cargo test -p scry-sources --test it golden` and review the diff.

use std::collections::HashSet;
use std::path::PathBuf;

use scry_core::Tlp;
use scry_core::score::{Severity, priority};
use scry_sources::Finding;
use scry_sources::criminalip::map::{Weights, domain_finding, ip_finding};
use scry_sources::criminalip::wire::{DomainReport, IpReport, MaliciousInfo};
use scry_stix::{BundleWriter, IndicatorState, MapOptions, indicator_objects};
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture exists"))
        .expect("fixture is JSON")
}

/// 2026-11-01 and 2026-11-20, 08:00 UTC.
const FIRST_SEEN: i64 = 1_793_520_000_000;
const LAST_CHANGED: i64 = 1_795_161_600_000;

/// One stored indicator as the store would hand it to the export.
struct Case {
    name: &'static str,
    kind: &'static str,
    value: String,
    tlp: Tlp,
    status: &'static str,
    skip_reason: Option<&'static str>,
    finding: Option<Finding>,
}

impl Case {
    fn bundle(&self, options: &MapOptions) -> String {
        let reasons: Vec<Value> = self
            .finding
            .iter()
            .flat_map(|f| &f.reasons)
            .map(|r| json!({"source": r.source, "signal": r.signal, "value": r.value, "points": r.points}))
            .collect();
        let score = priority(
            &self
                .finding
                .as_ref()
                .map(|f| f.reasons.clone())
                .unwrap_or_default(),
        );
        let tags = self
            .finding
            .as_ref()
            .map(|f| f.tags.clone())
            .unwrap_or_default();
        let sources = match &self.finding {
            Some(f) => {
                json!({"criminalip": {"status": "ok", "report_url": f.report_url, "data": f.details}})
            }
            None => json!({}),
        };
        let reasons = Value::from(reasons);
        let state = IndicatorState {
            kind: self.kind,
            value: &self.value,
            priority: score,
            severity: Severity::from_priority(score).as_str(),
            status: self.status,
            skip_reason: self.skip_reason,
            tlp: self.tlp,
            tags: &tags,
            reasons: &reasons,
            sources: &sources,
            first_seen_ms: FIRST_SEEN,
            last_changed_ms: LAST_CHANGED,
            labels: &[],
            priority_override: None,
            version_us: 0,
        };
        let objects = indicator_objects(&state, options).expect("maps");
        let mut out = Vec::new();
        let mut writer = BundleWriter::start(&mut out).expect("writes");
        writer.write(&mut out, &objects).expect("writes");
        writer.finish(&mut out).expect("closes");
        String::from_utf8(out).expect("UTF-8")
    }
}

fn ip_case(name: &'static str, file: &str, malicious: Option<MaliciousInfo>, tlp: Tlp) -> Case {
    let body = fixture(file);
    let ip = body["ip"]
        .as_str()
        .expect("fixture names its IP")
        .to_owned();
    let report: IpReport = serde_json::from_value(body).expect("decodes");
    Case {
        name,
        kind: "ipv4-addr",
        finding: Some(ip_finding(
            &ip,
            &report,
            malicious.as_ref(),
            &Weights::default(),
        )),
        value: ip,
        tlp,
        status: "enriched",
        skip_reason: None,
    }
}

fn domain_case(name: &'static str, file: &str, value: &str, kind: &'static str) -> Case {
    let report: DomainReport =
        serde_json::from_value(fixture(file)["data"].clone()).expect("decodes");
    Case {
        name,
        kind,
        value: value.to_owned(),
        tlp: Tlp::Green,
        status: "enriched",
        skip_reason: None,
        finding: Some(domain_finding(
            Some(14_341_560),
            &report,
            &Weights::default(),
        )),
    }
}

fn cases() -> Vec<Case> {
    let malicious: MaliciousInfo = serde_json::from_value(
        json!({"ip": "45.155.205.233", "is_malicious": true, "can_remote_access": true}),
    )
    .expect("decodes");
    vec![
        ip_case(
            "ip-report-current",
            "ip-report-current.json",
            Some(malicious),
            Tlp::Amber,
        ),
        ip_case(
            "ip-data-legacy-2022",
            "ip-data-legacy-2022.json",
            None,
            Tlp::Green,
        ),
        ip_case(
            "ip-report-nulls",
            "ip-report-nulls.json",
            None,
            Tlp::AmberStrict,
        ),
        domain_case(
            "domain-report-2022",
            "domain-report-2022.json",
            "paypa1-secure.com",
            "domain-name",
        ),
        domain_case(
            "url-report-2024",
            "domain-report-2024.json",
            "https://google.com/search?q=scry",
            "url",
        ),
        Case {
            name: "skipped-internal",
            kind: "ipv4-addr",
            value: "10.20.30.40".into(),
            tlp: Tlp::Red,
            status: "skipped",
            skip_reason: Some("internal"),
            finding: None,
        },
        Case {
            name: "cidr-unenriched",
            kind: "ipv4-addr",
            value: "198.51.100.0/24".into(),
            tlp: Tlp::Clear,
            status: "skipped",
            skip_reason: Some("unsupported"),
            finding: None,
        },
    ]
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/golden")
        .join(format!("{name}.json"))
}

#[test]
fn answers_map_to_the_golden_bundles() {
    let update = std::env::var_os("SCRY_UPDATE_GOLDEN").is_some();
    let mut mismatched = Vec::new();
    for case in cases() {
        let bundle = case.bundle(&MapOptions::default());
        let path = golden_path(case.name);
        if update {
            std::fs::write(&path, &bundle).expect("writes the golden file");
            continue;
        }
        let want =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if want != bundle {
            let line = want
                .lines()
                .zip(bundle.lines())
                .position(|(a, b)| a != b)
                .map_or(want.lines().count().min(bundle.lines().count()), |n| n);
            mismatched.push(format!(
                "{}: first difference at line {}\n  golden: {}\n  mapped: {}",
                path.display(),
                line + 1,
                want.lines().nth(line).unwrap_or("<end>"),
                bundle.lines().nth(line).unwrap_or("<end>")
            ));
        }
    }
    assert!(
        mismatched.is_empty(),
        "mapping differs from the golden files (regenerate with SCRY_UPDATE_GOLDEN=1 if intended):\n{}",
        mismatched.join("\n")
    );
}

/// What every bundle must satisfy whatever the data: unique ids, every reference resolvable
/// inside the bundle (or a predefined TLP marking), a TLP marking on every object, UUIDv4-shaped
/// ids for non-observables, and the same bundle on every run.
#[test]
fn bundles_are_self_contained_marked_and_deterministic() {
    for case in cases() {
        let text = case.bundle(&MapOptions::default());
        assert_eq!(text, case.bundle(&MapOptions::default()), "{}", case.name);
        let bundle: Value = serde_json::from_str(&text).expect("bundle is JSON");
        let objects = bundle["objects"].as_array().expect("objects");
        let ids: HashSet<&str> = objects
            .iter()
            .map(|o| o["id"].as_str().expect("id"))
            .collect();
        assert_eq!(ids.len(), objects.len(), "{}: duplicate ids", case.name);
        for object in objects {
            let id = object["id"].as_str().expect("id");
            if object["type"] != "marking-definition" {
                let markings = object["object_marking_refs"].as_array().expect("marked");
                assert_eq!(markings.len(), 1, "{id}");
                assert_eq!(
                    scry_stix::tlp_from_marking_ref(markings[0].as_str().expect("ref")),
                    Some(case.tlp),
                    "{id} carries the indicator's TLP"
                );
            }
            for key in ["source_ref", "target_ref", "created_by_ref"] {
                if let Some(target) = object.get(key).and_then(Value::as_str) {
                    assert!(
                        ids.contains(target),
                        "{}: {id} {key} {target} is not in the bundle",
                        case.name
                    );
                }
            }
            let is_observable =
                object.get("created").is_none() && object["type"] != "marking-definition";
            let uuid = uuid_version(id);
            if object["type"] == "x509-certificate" {
                // No hash or serial number: STIX asks for a UUIDv4.
                assert_eq!(uuid, 4, "{id}");
            } else if is_observable {
                assert_eq!(uuid, 5, "{id}");
            } else if object["type"] != "marking-definition" {
                assert_eq!(uuid, 4, "{id}");
            }
        }
        if case.finding.is_some() {
            let indicator = objects
                .iter()
                .find(|o| o["type"] == "indicator")
                .expect("indicator");
            assert!(indicator["x_opencti_score"].as_u64().is_some());
            assert!(
                indicator["external_references"][0]["url"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("https://www.criminalip.io/"))
            );
        }
    }
}

#[test]
fn related_objects_are_capped_per_indicator() {
    let case = &cases()[0];
    let options = MapOptions {
        max_related: 1,
        ..MapOptions::default()
    };
    let bundle: Value = serde_json::from_str(&case.bundle(&options)).expect("JSON");
    let objects = bundle["objects"].as_array().expect("objects");
    let count = |kind: &str| {
        objects
            .iter()
            .filter(|o| o["relationship_type"] == kind)
            .count()
    };
    assert_eq!(count("has"), 1, "one vulnerability linked");
    let infrastructure = objects
        .iter()
        .find(|o| o["type"] == "infrastructure")
        .expect("infrastructure");
    assert_eq!(
        infrastructure["x_scry_services"].as_array().map(Vec::len),
        Some(1)
    );
    assert!(
        infrastructure["x_scry_not_linked"]["services"].as_u64() >= Some(1),
        "{infrastructure}"
    );
}

fn uuid_version(id: &str) -> u32 {
    let uuid = id.rsplit("--").next().expect("uuid part");
    uuid.chars()
        .nth(14)
        .and_then(|c| c.to_digit(16))
        .expect("version digit")
}
