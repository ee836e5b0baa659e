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
