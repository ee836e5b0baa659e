//! The offline sources through the binary: a network data pack built with `scry data build` and
//! named in configuration, its AS applied by the egress gate before anything is sent out, and the
//! protected brands of `[sources.phishing]`.

use scry_sandbox::SandboxConfig;
use serde_json::Value;

use super::{run, run_args, runtime, scry, start_sandbox, text};

/// Writes a small pack (AS64500 "Example Transit" on 45.155.205.0/24, in NL) into `home`.
fn build_pack(home: &std::path::Path) -> String {
    std::fs::write(
        home.join("asn.csv"),
        "45.155.205.0,45.155.205.255,64500,Example Transit\n2001:db8::,2001:db8::ffff,64501,\"Example, v6\"\n",
    )
    .expect("write");
    std::fs::write(home.join("country.csv"), "45.155.205.0,45.155.205.255,NL\n").expect("write");
    std::fs::write(
        home.join("meta.json"),
        r#"{"built": "2026-11-24", "sources": [{"provides": "asn", "package": "test-asn@1", "license": "CC0", "attribution": "the tests", "data_as_of": "2026-11-01"}]}"#,
    )
    .expect("write");
    let built = run_args(
        home,
        &[
            "data",
            "build",
            "--meta",
            "meta.json",
            "--asn",
            "asn.csv",
            "--country",
            "country.csv",
            "--output",
            "pack.bin.gz",
        ],
        b"",
    );
    assert_eq!(built.status.code(), Some(0), "{}", text(&built.stderr));
    assert!(
        text(&built.stderr).contains("2 AS rows and 1 country rows"),
        "{}",
        text(&built.stderr)
    );
    home.join("pack.bin.gz").display().to_string()
}

#[test]
fn a_built_pack_answers_and_its_as_keeps_allowlisted_networks_home() {
    let rt = runtime();
    let sandbox = start_sandbox(&rt, SandboxConfig::default());
    let home = tempfile::tempdir().expect("tempdir");
    let pack = build_pack(home.path());
    std::fs::write(
        home.path().join("scry.toml"),
        format!(
            "[egress]\nallowlist = [\"AS64500\"]\n\n[sources.geo]\npack = {pack:?}\n\n\
             [sources.criminalip]\nmax_requests = 50\n"
        ),
    )
    .expect("write config");

    let status = run_args(home.path(), &["data", "status", "--format", "json"], b"");
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stderr));
    let report: Value = serde_json::from_slice(&status.stdout).expect("JSON");
    assert_eq!(report["pack"], pack);
    assert_eq!(report["sources"][0]["package"], "test-asn@1");
    assert_eq!(
        (
            report["ipv4_ranges"].as_u64(),
            report["ipv6_ranges"].as_u64()
        ),
        (Some(1), Some(1))
    );

    let mut command = scry(home.path());
    command
        .env("CRIMINALIP_API_KEY", "ck-test-offline")
        .env("CRIMINALIP_BASE_URL", sandbox.url())
        .args([
            "--store",
            "none",
            "enrich",
            "--no-store",
            "--format",
            "json",
            "-",
        ]);
    let output = run(command, b"45.155.205.233\n");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let records: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON");
    let geo = &records[0]["sources"]["geo"]["data"];
    assert_eq!(
        (
            &geo["asn"],
            &geo["as_name"],
            &geo["country"],
            &geo["data_as_of"]
        ),
        (
            &Value::from(64500),
            &Value::from("Example Transit"),
            &Value::from("NL"),
            &Value::from("2026-11-01")
        ),
        "{records:#?}"
    );
    assert_eq!(
        records[0]["sources"]["criminalip"]["skip_reason"], "allowlisted",
        "the AS from the offline data put it on the allowlist: {records:#?}"
    );
    let asked = super::asked(&sandbox);
    assert!(
        !asked.iter().any(|a| a.contains("45.155.205.233")),
        "the address never reached the sandbox: {asked:?}"
    );

    // A damaged pack is a configuration error that names the file.
    let damaged = home.path().join("pack.bin.gz");
    let bytes = std::fs::read(&damaged).expect("read");
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).expect("write");
    let output = run_args(home.path(), &["data", "status"], b"");
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("[sources.geo] pack")
            && stderr.contains("pack.bin.gz")
            && stderr.contains("corrupt"),
        "{stderr}"
    );
    rt.block_on(sandbox.stop());
}

#[test]
fn look_alikes_of_the_organizations_own_domains_are_marked() {
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        home.path().join("scry.toml"),
        "[sources.phishing]\nown_domains = [\"acme-industries.com\"]\ndefault_brands = false\n",
    )
    .expect("write config");
    let output = run_args(
        home.path(),
        &["enrich", "--no-store", "--format", "json", "-"],
        b"acme-industrles.com\nvpn.acme-industries.com\nacme-industries.com.login-check.net\npaypa1.com\n",
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let records: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON");
    let signals = |indicator: &str| -> Vec<String> {
        let record = records
            .iter()
            .find(|r| r["indicator"] == indicator)
            .unwrap_or_else(|| panic!("{indicator}: {records:#?}"));
        record["sources"]["phishing"]["data"]["signals"]
            .as_array()
            .expect("signals")
            .iter()
            .map(|s| s["signal"].as_str().expect("signal").to_owned())
            .collect()
    };
    assert_eq!(signals("acme-industrles.com"), ["lookalike"]);
    assert_eq!(
        signals("vpn.acme-industries.com"),
        Vec::<String>::new(),
        "its own host"
    );
    assert!(
        signals("acme-industries.com.login-check.net").contains(&"brand-in-subdomain".to_owned()),
        "{records:#?}"
    );
    assert_eq!(
        signals("paypa1.com"),
        Vec::<String>::new(),
        "the shipped brands are off"
    );

    std::fs::write(
        home.path().join("scry.toml"),
        "[sources.phishing]\nown_domains = [\"www.acme-industries.com\"]\n",
    )
    .expect("write config");
    let output = run_args(
        home.path(),
        &["enrich", "--no-store", "-"],
        b"example.org\n",
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr)
            .contains("own_domains: \"www.acme-industries.com\" is not a registrable domain"),
        "{}",
        text(&output.stderr)
    );
}

/// A packed Criminal IP database (layout v2, signed with the test key) holding a C2 server.
fn write_ctidb(home: &std::path::Path) {
    use crate::ctidb_bin_writer::{Detail, V2};
    let file = V2 {
        geo: vec![
            ("1.0.0.0", "1.0.0.255", "AU", "APNIC Research", "Canberra"),
            (
                "45.155.205.0",
                "45.155.205.255",
                "NL",
                "Example Hosting",
                "Amsterdam",
            ),
        ],
        flags: vec![
            (1, vec![]),
            (4, vec![("45.155.205.0", "45.155.205.255")]),
            (6, vec![("1.0.0.7", "1.0.0.7")]),
            (8, vec![("1.0.0.7", "1.0.0.7")]),
        ],
        scores: Some(vec![("1.0.0.7", "1.0.0.7", 5, 3)]),
        details: Some(vec![Detail {
            start: "1.0.0.7",
            end: "1.0.0.7",
            hostname: "c2.example.test",
            representative_domain: "",
            ssl: "",
            products: &["OpenSSH"],
            cve: &["CVE-2024-6387"],
            ports: &[22, 8443],
            tags: &["cobalt strike"],
        }]),
        license: true,
    };
    std::fs::write(home.join("criminalip.bin"), file.bytes()).expect("write");
    std::fs::write(
        home.join("scry.toml"),
        "[sources.ctidb]\npath = \"criminalip.bin\"\n",
    )
    .expect("write config");
}

#[test]
fn a_criminal_ip_database_file_scores_and_maps_like_the_api() {
    let home = tempfile::tempdir().expect("tempdir");
    write_ctidb(home.path());

    // Signed with a key that is not Criminal IP's: refused, saying why and which file.
    let output = run_args(home.path(), &["enrich", "--no-store", "-"], b"1.0.0.7\n");
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("[sources.ctidb] path")
            && stderr.contains("criminalip.bin")
            && stderr.contains("signature does not verify"),
        "{stderr}"
    );

    // The vendor's documented switch skips the check.
    let enrich = |args: &[&str], stdin: &[u8]| {
        let mut command = super::scry(home.path());
        command.env("CTIDB_SKIP_SIGNATURE_VERIFY", "yes").args(args);
        let output = run(command, stdin);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        output
    };
    let output = enrich(
        &["enrich", "--tlp", "green", "--format", "json", "-"],
        b"1.0.0.7\n45.155.205.233\n203.0.113.9\n",
    );
    let records: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON");
    let find = |indicator: &str| {
        records
            .iter()
            .find(|r| r["indicator"] == indicator)
            .unwrap_or_else(|| panic!("{indicator}: {records:#?}"))
    };
    let c2 = find("1.0.0.7");
    let signals: Vec<(&str, i64)> = c2["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .filter(|r| r["source"] == "ctidb")
        .map(|r| {
            (
                r["signal"].as_str().expect("signal"),
                r["points"].as_i64().expect("points"),
            )
        })
        .collect();
    assert_eq!(
        signals,
        [
            ("outbound-score", 90),
            ("c2", 30),
            ("abuse", 10),
            ("exposed-cve", 5),
            ("remote-access", 5)
        ],
        "{c2:#?}"
    );
    assert_eq!(c2["priority"], 100);
    let data = &c2["sources"]["ctidb"]["data"];
    assert_eq!(
        (&data["outbound"], &data["inbound"], &data["country"]),
        (
            &Value::from("Critical"),
            &Value::from("Moderate"),
            &Value::from("AU")
        )
    );
    assert_eq!(data["database"]["format"], "packed");
    assert_eq!(
        c2["sources"]["ctidb"]["report_url"],
        "https://www.criminalip.io/asset/report/1.0.0.7"
    );
    assert_eq!(data["database"]["plan"], "Full");
    let tags = c2["tags"].as_array().expect("tags");
    for tag in [
        "c2",
        "abuse",
        "vulnerable",
        "remote-access",
        "cobalt-strike",
    ] {
        assert!(tags.contains(&Value::from(tag)), "{tag}: {tags:?}");
    }
    let hosting = find("45.155.205.233");
    assert_eq!(
        hosting["sources"]["ctidb"]["data"]["flags"],
        serde_json::json!(["hosting"])
    );
    assert!(
        find("203.0.113.9")["sources"].get("ctidb").is_none(),
        "a documentation address is not public and is not asked"
    );

    // The graph holds what the file says, as it would hold the API's answer.
    let path = home.path().join("bundle.json");
    enrich(
        &[
            "export",
            "--format",
            "stix",
            "--output",
            &path.display().to_string(),
        ],
        b"",
    );
    let bundle: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("export")).expect("JSON");
    let objects = bundle["objects"].as_array().expect("objects");
    let of_type = |kind: &'static str| objects.iter().filter(move |o| o["type"] == kind);
    assert!(of_type("vulnerability").any(|o| o["name"] == "CVE-2024-6387"));
    assert!(of_type("infrastructure").any(|o| {
        o["name"] == "1.0.0.7 as seen by Criminal IP"
            && o["infrastructure_types"]
                .as_array()
                .is_some_and(|t| t.contains(&Value::from("command-and-control")))
    }));
    assert!(of_type("domain-name").any(|o| o["value"] == "c2.example.test"));
    assert!(of_type("software").any(|o| o["name"] == "OpenSSH"));

    // The file and the built-in network data disagree on 45.155.205.233's country: the file's
    // city-level location wins (more specific), the other is kept as an alternative.
    let hosting = find("45.155.205.233");
    assert_eq!(
        hosting["network"]["location"]["source"], "ctidb",
        "{hosting:#}"
    );
    assert_eq!(hosting["network"]["location"]["country"], "NL");
    assert_eq!(hosting["network"]["location"]["city"], "Amsterdam");
    let alternatives = hosting["network"]["alternatives"]
        .as_array()
        .expect("alternatives");
    assert!(
        alternatives
            .iter()
            .any(|a| a["source"] == "geo" && a["country"].as_str().is_some_and(|c| c != "NL")),
        "{hosting:#}"
    );
    let address = of_type("ipv4-addr")
        .find(|o| o["value"] == "45.155.205.233")
        .and_then(|o| o["id"].as_str())
        .expect("the address");
    let links = |kind: &'static str, target: &'static str| {
        objects
            .iter()
            .filter(move |o| o["source_ref"] == address && o["relationship_type"] == kind)
            .filter_map(|o| o["target_ref"].as_str())
            .filter(move |t| t.starts_with(target))
            .collect::<Vec<&str>>()
    };
    // STIX 2.1 lists `located-at` for SDOs only: an address is `related-to` its location.
    let located = links("related-to", "location--");
    assert_eq!(located.len(), 1, "one location is exported: {located:?}");
    let location = objects
        .iter()
        .find(|o| o["id"] == located[0])
        .expect("the location");
    assert_eq!(
        (&location["country"], &location["city"]),
        (&Value::from("NL"), &Value::from("Amsterdam"))
    );
    let systems = links("belongs-to", "autonomous-system--");
    assert_eq!(
        systems.len(),
        1,
        "one autonomous system is exported: {systems:?}"
    );
    let system = objects
        .iter()
        .find(|o| o["id"] == systems[0])
        .expect("the AS");
    assert_eq!(
        system["number"],
        hosting["network"]["autonomous_system"]["asn"]
    );
    let indicator = of_type("indicator")
        .find(|o| o["name"] == "45.155.205.233")
        .expect("the indicator");
    assert_eq!(
        &indicator["x_scry_network_alternatives"],
        &hosting["network"]["alternatives"]
    );
}

/// Indicators enriched with nothing but the network data built into scry reach the graph with
/// their autonomous system (`belongs-to`) and country (`related-to` a location: STIX lists
/// `located-at` for SDOs only), authored by scry.
#[test]
fn offline_addresses_reach_the_graph_with_their_network() {
    let home = tempfile::tempdir().expect("tempdir");
    let enrich = run_args(
        home.path(),
        &["enrich", "-q", "-"],
        b"45.155.205.233
185.220.101.47
2a03:2880:f12f:83:face:b00c:0:25de
",
    );
    assert_eq!(enrich.status.code(), Some(0), "{}", text(&enrich.stderr));
    let (_, bundle) = super::export_stix(home.path());
    let objects = bundle["objects"].as_array().expect("objects");
    let scry = objects
        .iter()
        .find(|o| o["type"] == "identity" && o["name"] == "scry")
        .and_then(|o| o["id"].as_str())
        .expect("scry's identity");
    for address in [
        "45.155.205.233",
        "185.220.101.47",
        "2a03:2880:f12f:83:face:b00c:0:25de",
    ] {
        let id = objects
            .iter()
            .find(|o| o["value"] == address)
            .and_then(|o| o["id"].as_str())
            .unwrap_or_else(|| panic!("{address} exported"));
        for (kind, target) in [
            ("belongs-to", "autonomous-system--"),
            ("related-to", "location--"),
        ] {
            let links: Vec<&Value> = objects
                .iter()
                .filter(|o| o["source_ref"] == id && o["relationship_type"] == kind)
                .filter(|o| {
                    o["target_ref"]
                        .as_str()
                        .is_some_and(|t| t.starts_with(target))
                })
                .collect();
            assert_eq!(links.len(), 1, "{address} {kind}: {links:#?}");
            assert_eq!(links[0]["created_by_ref"], scry, "{address} {kind}");
        }
    }
    let countries: Vec<&str> = objects
        .iter()
        .filter(|o| o["type"] == "location")
        .filter_map(|o| o["country"].as_str())
        .collect();
    assert!(!countries.is_empty());
    assert!(
        countries
            .iter()
            .all(|c| c.len() == 2 && c.chars().all(|ch| ch.is_ascii_uppercase())),
        "{countries:?}"
    );
}

#[test]
fn data_update_rebuilds_the_pack_only_when_upstream_changed() {
    let (server, bodies) = super::feeds::file_server(vec![
        (
            "/asn-ipv4.csv",
            "45.155.205.0,45.155.205.255,64500,Example Transit\n",
        ),
        ("/country-ipv4.csv", "45.155.205.0,45.155.205.255,NL\n"),
    ]);
    let home = tempfile::tempdir().expect("tempdir");
    let base = format!("http://127.0.0.1:{}", server.port);
    std::fs::write(
        home.path().join("scry.toml"),
        format!(
            "[sources.geo]\nupdate_asn = [\"{base}/asn-ipv4.csv\"]\n\
             update_country = [\"{base}/country-ipv4.csv\"]\n"
        ),
    )
    .expect("write config");
    let pack = home.path().join("data/scry/netpack.bin.gz");
    let network = || {
        let output = run_args(
            home.path(),
            &["enrich", "--no-store", "--format", "json", "-"],
            b"45.155.205.233\n",
        );
        let records: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON");
        records[0]["sources"]["geo"]["data"].clone()
    };
    let built_in = network();
    assert_ne!(built_in["asn"], 64500, "the built-in data says otherwise");

    let first = run_args(home.path(), &["data", "update"], b"");
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    assert!(
        text(&first.stderr)
            .contains("network data updated: 1 AS rows and 1 country rows (2 of 2 files changed)"),
        "{}",
        text(&first.stderr)
    );
    let updated = network();
    assert_eq!(
        (&updated["asn"], &updated["country"], &updated["data_as_of"]),
        (
            &Value::from(64500),
            &Value::from("NL"),
            &Value::from("2026-11-17")
        )
    );
    let status = run_args(home.path(), &["data", "status", "--format", "json"], b"");
    let report: Value = serde_json::from_slice(&status.stdout).expect("JSON");
    assert_eq!(report["pack"], pack.display().to_string());
    assert_eq!(
        report["sources"][0]["package"],
        format!("{base}/asn-ipv4.csv")
    );

    // Unchanged upstream: asked with the ETags, nothing rebuilt.
    let written = std::fs::metadata(&pack)
        .expect("pack")
        .modified()
        .expect("mtime");
    let again = run_args(home.path(), &["data", "update"], b"");
    assert!(
        text(&again.stderr).contains("network data is up to date"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(
        std::fs::metadata(&pack)
            .expect("pack")
            .modified()
            .expect("mtime"),
        written
    );
    let asked = server.log();
    assert_eq!(asked.len(), 4);
    assert!(
        asked[2..].iter().all(|a| a.if_none_match.is_some()),
        "{asked:?}"
    );

    // One file changed: rebuilt from it and the copy of the other.
    bodies.lock().expect("not poisoned")[0].1 =
        "45.155.205.0,45.155.205.255,64511,Renamed Transit\n".into();
    let changed = run_args(home.path(), &["data", "update"], b"");
    assert!(
        text(&changed.stderr).contains("(1 of 2 files changed)"),
        "{}",
        text(&changed.stderr)
    );
    assert_eq!(network()["as_name"], "Renamed Transit");

    // An upstream failure changes nothing.
    bodies.lock().expect("not poisoned").clear();
    let failed = run_args(home.path(), &["data", "update", "--force"], b"");
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        text(&failed.stderr).contains(&format!(
            "network data update failed, nothing changed: {base}/asn-ipv4.csv: HTTP 404"
        )),
        "{}",
        text(&failed.stderr)
    );
    assert_eq!(network()["asn"], 64511);
}
