//! The command line as documented in README.md: formats, stdin, gzip, colour, exit codes, config.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::Value;

use super::{run, run_args, scry, text, workspace};

fn example() -> std::path::PathBuf {
    workspace().join("examples/iocs.txt")
}

#[test]
fn readme_command_prints_a_sorted_table_and_a_summary() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut command = scry(home.path());
    command.arg("enrich").arg(example());
    let output = run(command, b"");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("PRI SEVERITY TYPE"), "{stdout}");
    assert!(!stdout.contains('\u{1b}'), "no colour when piped");
    let row = |indicator: &str| {
        lines
            .iter()
            .find(|l| l.split_whitespace().nth(3) == Some(indicator))
            .copied()
    };
    assert!(
        row("185.220.101.47").is_some_and(|l| l.contains("enriched")),
        "{stdout}"
    );
    assert!(
        row("10.20.4.17").is_some_and(|l| l.contains("skipped") && l.ends_with("private")),
        "{stdout}"
    );
    assert!(
        row("fileserver01.corp").is_some_and(|l| l.ends_with("internal-domain")),
        "{stdout}"
    );
    assert!(
        row("www.xn--pypal-4ve.com").is_some_and(|l| l.contains("punycode www.pаypal.com")),
        "{stdout}"
    );
    assert!(
        row("https://login-micros0ft-365.com/owa/auth/logon.aspx").is_some(),
        "{stdout}"
    );
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("iocs.txt:34: rejected \"999.1.1.1\""),
        "{stderr}"
    );
    assert!(stderr.contains("read 22, unique 19, duplicates 1, enriched 9, cached 0, skipped 10, rejected 2, failed 0, credits used 0"), "{stderr}");
    assert!(
        stderr.contains("note: Criminal IP is not configured, so nothing left this machine")
            && stderr.contains("export CRIMINALIP_API_KEY=<your key>"),
        "{stderr}"
    );
    // Without a key or a network, public addresses still get their AS, organization and country
    // from the built-in network data.
    assert!(
        row("185.220.101.47")
            .is_some_and(|l| l.ends_with("AS60729 Stiftung Erneuerbare Freiheit DE")),
        "{stdout}"
    );
    assert!(
        row("2a03:2880:f12f:83:face:b00c:0:25de").is_some_and(|l| l.contains("AS32934 Facebook")),
        "{stdout}"
    );
    // Look-alike domains are marked and rise in priority, with the reason.
    assert!(
        row("www.xn--pypal-4ve.com").is_some_and(|l| l.starts_with(" 70 high")
            && l.contains("imitates paypal.com (characters that read alike)")
            && l.contains("lookalike]")),
        "{stdout}"
    );
    assert!(
        row("http://paypal-account-verify.info/signin?session=8f3a")
            .is_some_and(|l| l.contains("brand-in-name paypal")),
        "{stdout}"
    );
    assert!(
        stderr.contains("offline sources only (classify, geo, phishing)"),
        "{stderr}"
    );
}

#[test]
fn json_records_have_every_documented_field() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut command = scry(home.path());
    command.args(["enrich", "--format", "json"]).arg(example());
    let output = run(command, b"");
    assert_eq!(output.status.code(), Some(0));
    let records: Vec<Value> =
        serde_json::from_slice(&output.stdout).expect("stdout is one JSON array");
    assert_eq!(
        records.len(),
        21,
        "19 unique indicators and 2 rejected lines"
    );
    let fields = [
        "input",
        "indicator",
        "type",
        "status",
        "skip_reason",
        "error",
        "priority",
        "severity",
        "reasons",
        "tags",
        "sources",
        "stix_id",
    ];
    for record in &records {
        for field in fields {
            assert!(record.get(field).is_some(), "{field} missing in {record}");
        }
    }
    let find = |indicator: &str| {
        records
            .iter()
            .find(|r| r["indicator"] == indicator)
            .unwrap_or_else(|| panic!("{indicator}"))
    };
    let url = find("https://login-micros0ft-365.com/owa/auth/logon.aspx");
    assert_eq!(
        url["input"],
        "hxxps://login-micros0ft-365[.]com/owa/auth/logon.aspx"
    );
    assert_eq!(url["type"], "url");
    assert_eq!(url["status"], "enriched");
    assert_eq!(
        (url["priority"].as_u64(), url["severity"].as_str()),
        (Some(40), Some("medium"))
    );
    assert_eq!(
        url["sources"]["phishing"]["data"]["signals"][0]["value"],
        "microsoft in login-micros0ft-365.com"
    );
    assert_eq!(url["sources"]["geo"], Value::Null, "no address to look up");
    assert_eq!(
        url["sources"]["classify"]["data"]["host_details"]["registrable_domain"],
        "login-micros0ft-365.com"
    );
    assert!(
        url["stix_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("url--"))
    );
    let private = find("10.20.4.17");
    assert_eq!(
        (private["status"].as_str(), private["skip_reason"].as_str()),
        (Some("skipped"), Some("private"))
    );
    let block = find("91.92.240.0/22");
    assert_eq!(block["type"], "ipv4-addr");
    let rejected: Vec<&Value> = records
        .iter()
        .filter(|r| r["status"] == "rejected")
        .collect();
    assert_eq!(rejected.len(), 2);
    assert!(
        rejected.iter().all(|r| r["indicator"].is_null()
            && r["error"].is_string()
            && r["position"].is_string())
    );
}

#[test]
fn jsonl_and_csv_carry_the_same_records() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut command = scry(home.path());
    command
        .args(["enrich", "-q", "--format", "jsonl"])
        .arg(example());
    let output = run(command, b"");
    assert!(
        output.stderr.is_empty(),
        "-q keeps stderr quiet: {}",
        text(&output.stderr)
    );
    let jsonl: Vec<Value> = text(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one object per line"))
        .collect();
    let mut command = scry(home.path());
    command
        .args(["enrich", "-q", "--format", "csv"])
        .arg(example());
    let output = run(command, b"");
    let mut reader = csv::Reader::from_reader(output.stdout.as_slice());
    let headers = reader.headers().expect("header").clone();
    assert_eq!(&headers[2], "indicator");
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), jsonl.len());
    for (row, record) in rows.iter().zip(&jsonl) {
        assert_eq!(&row[2], record["indicator"].as_str().unwrap_or(""));
        assert_eq!(&row[4], record["status"].as_str().expect("status"));
    }
}

#[test]
fn stdin_with_dash_or_no_argument() {
    let home = tempfile::tempdir().expect("tempdir");
    let mail = b"Please block hxxp://bad-site[.]ru/x and 45.155.205[.]233, thanks.\n";
    for args in [
        &["enrich", "--input-format", "text", "--format", "jsonl", "-"][..],
        &["enrich", "--format", "jsonl"][..],
    ] {
        let mut command = scry(home.path());
        command.args(args);
        let output = run(command, mail);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&output.stderr)
        );
        let indicators: Vec<String> = text(&output.stdout)
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).expect("json")["indicator"]
                    .as_str()
                    .expect("indicator")
                    .to_owned()
            })
            .collect();
        assert_eq!(
            indicators,
            ["http://bad-site.ru/x", "45.155.205.233"],
            "{args:?}"
        );
    }
}

#[test]
fn gzip_and_several_inputs_at_once() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder
        .write_all(b"indicator,tlp\n8.8.8.8,green\n1.1.1.1,amber\n")
        .expect("gzip");
    std::fs::write(
        home.path().join("feed.csv.gz"),
        encoder.finish().expect("gzip"),
    )
    .expect("write");
    std::fs::write(home.path().join("more.txt"), "8.8.8.8\n9.9.9.9\n").expect("write");
    let mut command = scry(home.path());
    command.args(["enrich", "--format", "jsonl", "feed.csv.gz", "more.txt"]);
    let output = run(command, b"");
    let records: Vec<Value> = text(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let mut indicators: Vec<&str> = records
        .iter()
        .map(|r| r["indicator"].as_str().expect("indicator"))
        .collect();
    indicators.sort();
    assert_eq!(indicators, ["1.1.1.1", "8.8.8.8", "9.9.9.9"]);
    assert!(
        text(&output.stderr).contains("read 4, unique 3, duplicates 1"),
        "{}",
        text(&output.stderr)
    );
    let first = records
        .iter()
        .find(|r| r["indicator"] == "8.8.8.8")
        .expect("8.8.8.8");
    assert_eq!(
        first["tlp"], "green",
        "the first occurrence is the one kept"
    );
}

#[test]
fn usage_and_configuration_errors_exit_2_and_say_what_to_do() {
    let home = tempfile::tempdir().expect("tempdir");
    let missing = run_args(home.path(), &["enrich", "nope.txt"], b"");
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).contains("cannot read nope.txt")
            && text(&missing.stderr).contains("check the path"),
        "{}",
        text(&missing.stderr)
    );

    std::fs::write(home.path().join("scry.toml"), "[enrich]\nconcurency = 4\n").expect("write");
    let typo = run_args(home.path(), &["config", "check"], b"");
    assert_eq!(typo.status.code(), Some(2));
    let stderr = text(&typo.stderr);
    assert!(
        stderr.contains("concurency") && stderr.contains("scry.toml"),
        "names the key and the file: {stderr}"
    );

    std::fs::write(
        home.path().join("scry.toml"),
        "[egress]\nallowlist = [\"10.0.0.0/8\", \"10.0.0.9-10.0.0.1\"]\n",
    )
    .expect("write");
    let bad_entry = run_args(home.path(), &["config", "check"], b"");
    assert_eq!(bad_entry.status.code(), Some(2));
    assert!(
        text(&bad_entry.stderr).contains("10.0.0.9-10.0.0.1"),
        "{}",
        text(&bad_entry.stderr)
    );

    std::fs::remove_file(home.path().join("scry.toml")).expect("remove");
    let bad_tlp = run_args(
        home.path(),
        &["enrich", "--tlp", "purple", "-"],
        b"8.8.8.8\n",
    );
    assert_eq!(bad_tlp.status.code(), Some(2));
    assert!(
        text(&bad_tlp.stderr).contains("--tlp: unknown TLP level \"purple\""),
        "{}",
        text(&bad_tlp.stderr)
    );

    let bad_flag = run_args(home.path(), &["enrich", "--format", "yaml"], b"");
    assert_eq!(bad_flag.status.code(), Some(2));
}

#[test]
fn config_init_writes_a_file_that_checks_and_env_overrides_it() {
    let home = tempfile::tempdir().expect("tempdir");
    let init = run_args(home.path(), &["config", "init"], b"");
    assert_eq!(init.status.code(), Some(0), "{}", text(&init.stderr));
    assert!(home.path().join("scry.toml").exists());
    let again = run_args(home.path(), &["config", "init"], b"");
    assert_eq!(
        again.status.code(),
        Some(2),
        "an existing file is not overwritten"
    );

    let check = run(
        {
            let mut c = scry(home.path());
            c.args(["config", "check"])
                .env("SCRY_ENRICH__CONCURRENCY", "3")
                .env("SCRY_TEST_POSTGRES_URL", "postgres://elsewhere/test")
                .env("SCRY_SANDBOX_API_KEY", "not configuration either")
                .env(
                    "SCRY_EGRESS__ALLOWLIST",
                    "[\"10.0.0.0/8\",\"*.corp.example\"]",
                );
            c
        },
        b"",
    );
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stderr));
    let stdout = text(&check.stdout);
    assert!(stdout.contains("configuration OK: scry.toml"), "{stdout}");
    assert!(stdout.contains("enrichment concurrency: 3"), "{stdout}");
    assert!(stdout.contains("allowlist: 2 entries"), "{stdout}");
    let default_store = format!(
        "store: sqlite://{}",
        home.path().join("data/scry/scry.db").display()
    );
    assert!(stdout.contains(&default_store), "{stdout}");

    let store = run(
        {
            let mut c = scry(home.path());
            c.args(["config", "check"])
                .env("SCRY_STORE", "postgres://127.0.0.1/test");
            c
        },
        b"",
    );
    assert!(
        text(&store.stdout).contains("store: postgres://127.0.0.1/test"),
        "{}",
        text(&store.stdout)
    );
}

#[test]
fn allowlisted_indicators_from_config_are_skipped() {
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        home.path().join("allow.txt"),
        "# ours\n203.0.113.0/24\n45.155.205.0/24\n*.ourcompany.com\n",
    )
    .expect("write");
    std::fs::write(
        home.path().join("scry.toml"),
        "[egress]\nallowlist_files = [\"allow.txt\"]\n",
    )
    .expect("write");
    let output = run_args(
        home.path(),
        &["enrich", "--format", "jsonl", "-"],
        b"45.155.205.233\nvpn.ourcompany.com\n45.155.206.1\n",
    );
    let records: Vec<Value> = text(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let reasons: Vec<(&str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["indicator"].as_str().expect("indicator"),
                r["skip_reason"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            ("45.155.205.233", "allowlisted"),
            ("vpn.ourcompany.com", "allowlisted"),
            ("45.155.206.1", "-")
        ]
    );
}

#[test]
fn help_shows_examples_for_each_command() {
    let home = tempfile::tempdir().expect("tempdir");
    for args in [
        &["--help"][..],
        &["enrich", "--help"][..],
        &["config", "check", "--help"][..],
        &["config", "init", "--help"][..],
    ] {
        let output = run(
            {
                let mut c = scry(home.path());
                c.args(args);
                c
            },
            b"",
        );
        assert_eq!(output.status.code(), Some(0));
        assert!(text(&output.stdout).contains("Examples:"), "{args:?}");
    }
}
