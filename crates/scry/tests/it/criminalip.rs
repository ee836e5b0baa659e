//! `scry` with the Criminal IP source, against a sandbox on loopback: enrichment end to end,
//! connection tests, budgets, and the key never showing anywhere.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use scry_sandbox::SandboxConfig;
use serde_json::Value;

use super::{run, runtime, scry, start_sandbox as start, text, workspace};

const KEY: &str = "ck-live-7d4e2a91b0c3";

/// `scry` pointed at `sandbox` with the test key in the environment.
fn scry_at(home: &Path, base_url: &str) -> Command {
    let mut command = scry(home);
    command
        .env("CRIMINALIP_API_KEY", KEY)
        .env("CRIMINALIP_BASE_URL", base_url);
    command
}

fn fast_config(home: &Path, extra: &str) {
    let config = format!(
        "[sources.criminalip]\nmax_requests = 50\nretry_base_ms = 10\nscan_poll_seconds = 0.05\n{extra}"
    );
    std::fs::write(home.join("scry.toml"), config).expect("write config");
}

fn records(output: &Output) -> Vec<Value> {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "JSON on stdout ({e}): {}\n{}",
            text(&output.stdout),
            text(&output.stderr)
        )
    })
}

#[test]
fn enrich_shows_scores_flags_services_cves_geo_phishing_and_links() {
    let rt = runtime();
    let sandbox = start(
        &rt,
        SandboxConfig {
            scan_duration: Duration::from_millis(100),
            ..SandboxConfig::default()
        },
    );
    let home = tempfile::tempdir().expect("tempdir");
    fast_config(home.path(), "concurrency = 4\n");
    let mut command = scry_at(home.path(), &sandbox.url());
    command
        .args(["enrich", "--format", "json"])
        .arg(workspace().join("examples/iocs.txt"));
    let output = run(command, b"");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let records = records(&output);
    let find = |indicator: &str| {
        records
            .iter()
            .find(|r| r["indicator"] == indicator)
            .unwrap_or_else(|| panic!("{indicator}"))
    };

    let ip = find("193.32.162.159");
    let cip = &ip["sources"]["criminalip"];
    assert_eq!(cip["status"], "ok");
    assert_eq!(
        cip["report_url"],
        "https://www.criminalip.io/asset/report/193.32.162.159"
    );
    for field in [
        "inbound",
        "outbound",
        "flags",
        "asn",
        "as_name",
        "country",
        "services",
        "vulnerabilities",
    ] {
        assert!(!cip["data"][field].is_null(), "{field} in {}", cip["data"]);
    }
    assert!(
        ip["reasons"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x["source"] == "criminalip"))
    );
    let domain = find("secure-update.xyz");
    assert!(domain["sources"]["criminalip"]["data"]["phishing_probability"].is_number());
    assert!(
        domain["sources"]["criminalip"]["report_url"]
            .as_str()
            .is_some_and(|u| u.contains("/domain/report?scan_id="))
    );
    let url = find("https://login-micros0ft-365.com/owa/auth/logon.aspx");
    assert_eq!(url["sources"]["criminalip"]["status"], "ok");
    assert!(
        records
            .iter()
            .any(|r| r["priority"].as_u64().is_some_and(|p| p >= 50)),
        "some indicators score high"
    );
    let ordered: Vec<u64> = records
        .iter()
        .map(|r| r["priority"].as_u64().expect("priority"))
        .collect();
    assert!(
        ordered.windows(2).all(|w| w[0] >= w[1]),
        "sorted by priority: {ordered:?}"
    );

    // Nothing that must stay home reached the service.
    let log = sandbox.log().entries();
    let sent: String = log
        .iter()
        .map(|e| format!("{} {}\n", e.path, e.query))
        .collect();
    for private in [
        "10.20.4.17",
        "192.168.1.1",
        "fileserver01",
        "printer.local",
        "intranet.example.com",
        "198.51.100.23",
    ] {
        assert!(!sent.contains(private), "{private} was sent:\n{sent}");
    }
    assert_eq!(find("10.20.4.17")["skip_reason"], "private");
    // Criminal IP looks up no CIDR block: the local sources' answers stand, nothing is sent.
    let block = find("91.92.240.0/22");
    assert_eq!(block["status"], "enriched", "{block:#}");
    assert!(block["sources"]["geo"]["data"]["asn"].is_u64(), "{block:#}");
    assert!(!sent.contains("91.92.240"), "{sent}");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("criminalip: ") && stderr.contains(" requests ("),
        "{stderr}"
    );
    assert!(
        !stderr.contains("Criminal IP is not configured"),
        "{stderr}"
    );
}

#[test]
fn the_key_never_appears_in_output_logs_or_the_request_log() {
    let rt = runtime();
    let log_file = tempfile::NamedTempFile::new().expect("temp file");
    let sandbox = start(
        &rt,
        SandboxConfig {
            log_path: Some(log_file.path().to_owned()),
            scan_duration: Duration::ZERO,
            ..SandboxConfig::default()
        },
    );
    let home = tempfile::tempdir().expect("tempdir");
    fast_config(home.path(), "");
    let mut outputs = Vec::new();
    for args in [
        &["-vv", "enrich", "--format", "json", "-"][..],
        &["-vv", "sources", "test"][..],
        &["-vv", "config", "check"][..],
    ] {
        let mut command = scry_at(home.path(), &sandbox.url());
        command.args(args);
        outputs.push(run(
            command,
            b"8.8.8.8\nevil-site.example-store.com\nhxxp://bad[.]example-store.net/x\n",
        ));
    }
    // A rejected key is reported without being repeated.
    let mut wrong = scry(home.path());
    wrong
        .env("CRIMINALIP_API_KEY", format!("{KEY}-wrong"))
        .env("CRIMINALIP_BASE_URL", sandbox.url());
    let rejected_sandbox = start(
        &rt,
        SandboxConfig {
            api_key: Some("another".into()),
            ..SandboxConfig::default()
        },
    );
    wrong
        .env("CRIMINALIP_BASE_URL", rejected_sandbox.url())
        .args(["-vv", "enrich", "-"]);
    outputs.push(run(wrong, b"8.8.8.8\n"));
    for output in &outputs {
        let all = format!("{}{}", text(&output.stdout), text(&output.stderr));
        assert!(!all.contains(KEY), "the key leaked:\n{all}");
        assert!(all.len() > 100, "something was printed");
    }
    assert!(
        text(&outputs[0].stderr).contains("DEBUG") || text(&outputs[0].stderr).contains("TRACE"),
        "-vv logs verbosely"
    );
    let requests = std::fs::read_to_string(log_file.path()).expect("request log");
    assert!(requests.lines().count() >= 4, "{requests}");
    assert!(!requests.contains(KEY));
}

#[test]
fn sources_test_says_whether_the_key_works() {
    let rt = runtime();
    let sandbox = start(
        &rt,
        SandboxConfig {
            api_key: Some(KEY.into()),
            credits: Some(1000),
            ..SandboxConfig::default()
        },
    );
    let home = tempfile::tempdir().expect("tempdir");
    let mut ok = scry_at(home.path(), &sandbox.url());
    ok.args(["sources", "test", "criminalip"]);
    let output = run(ok, b"");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    assert!(
        text(&output.stdout).contains("criminalip: OK: key accepted")
            && text(&output.stdout).contains("account type Sandbox"),
        "{}",
        text(&output.stdout)
    );

    let mut bad = scry(home.path());
    bad.env("CRIMINALIP_API_KEY", "not-the-key")
        .env("CRIMINALIP_BASE_URL", sandbox.url())
        .args(["sources", "test"]);
    let output = run(bad, b"");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stdout).contains("criminalip: UNUSABLE: the API key was rejected"),
        "{}",
        text(&output.stdout)
    );

    let closed = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let mut unreachable = scry(home.path());
    std::fs::write(
        home.path().join("scry.toml"),
        "[sources.criminalip]\nretries = 1\nretry_base_ms = 10\ntimeout_seconds = 2\n",
    )
    .expect("config");
    unreachable
        .env("CRIMINALIP_API_KEY", KEY)
        .env("CRIMINALIP_BASE_URL", format!("http://{closed}"))
        .args(["sources", "test"]);
    let output = run(unreachable, b"");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stdout).contains("cannot reach the service"),
        "{}",
        text(&output.stdout)
    );

    std::fs::write(
        home.path().join("scry.toml"),
        "[sources.criminalip]\nmax_tlp = \"amber\"\n",
    )
    .expect("config");
    let mut no_key = scry(home.path());
    no_key.args(["sources", "test"]);
    let output = run(no_key, b"");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr)
            .contains("has no API key: set api_key_file, api_key, or the CRIMINALIP_API_KEY"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn an_unusable_source_makes_enrich_exit_1_and_records_failures() {
    let rt = runtime();
    let sandbox = start(
        &rt,
        SandboxConfig {
            api_key: Some("the-real-one".into()),
            ..SandboxConfig::default()
        },
    );
    let home = tempfile::tempdir().expect("tempdir");
    let mut command = scry_at(home.path(), &sandbox.url());
    command.args(["enrich", "--format", "json", "-"]);
    let output = run(command, b"8.8.8.8\n1.1.1.1\n");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr)
            .contains("error: source criminalip was unusable: the API key was rejected"),
        "{}",
        text(&output.stderr)
    );
    let records = records(&output);
    assert_eq!(records.len(), 2, "every indicator still gets a record");
    assert!(records.iter().all(|r| r["status"] == "failed"));
    assert_eq!(
        sandbox.log().entries().len(),
        1,
        "only the pre-flight check was sent"
    );
}

#[test]
fn a_spent_budget_skips_instead_of_failing() {
    let rt = runtime();
    let sandbox = start(&rt, SandboxConfig::default());
    let home = tempfile::tempdir().expect("tempdir");
    fast_config(
        home.path(),
        "concurrency = 1\ndaily_credits = 5\nalert_percent = 60\n",
    );
    let mut command = scry_at(home.path(), &sandbox.url());
    command.args(["enrich", "--format", "json", "-"]);
    let ips: String = (1..=8).map(|i| format!("45.{i}.1.1\n")).collect();
    let output = run(command, ips.as_bytes());
    assert_eq!(
        output.status.code(),
        Some(0),
        "a spent budget is not an error: {}",
        text(&output.stderr)
    );
    let records = records(&output);
    assert_eq!(
        records.iter().filter(|r| r["status"] == "enriched").count(),
        5
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| r["skip_reason"] == "budget")
            .count(),
        3
    );
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("credit usage reached 60 % of the daily budget"),
        "{stderr}"
    );
    assert!(stderr.contains("daily credit budget spent"), "{stderr}");
    assert!(stderr.contains("credits today 5/5"), "{stderr}");
    assert_eq!(super::requests_to(&sandbox, "/v1/asset/ip/report"), 5);
}

/// `scry sandbox` as a person runs it: a child process on a loopback port.
#[test]
fn the_sandbox_command_serves_the_api() {
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    let home = tempfile::tempdir().expect("tempdir");
    let log = home.path().join("requests.jsonl");
    let mut child = scry(home.path())
        .args([
            "sandbox",
            "--listen",
            &addr.to_string(),
            "--credits",
            "2",
            "--log",
        ])
        .arg(&log)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sandbox starts");
    let ready = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        std::net::TcpStream::connect(addr).is_ok()
    });
    assert!(ready, "the sandbox listens");
    let mut command = scry_at(home.path(), &format!("http://{addr}"));
    command.args(["enrich", "--format", "jsonl", "-"]);
    let output = run(command, b"8.8.8.8\n8.8.4.4\n9.9.9.9\n");
    child.kill().expect("stop the sandbox");
    let _ = child.wait();
    let statuses: Vec<String> = text(&output.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("json")["status"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| *s == "enriched").count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| *s == "skipped").count(),
        1,
        "the third is skipped when the credits run out: {statuses:?}"
    );
    let entries: Vec<Value> = std::fs::read_to_string(&log)
        .expect("log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert!(
        entries.iter().any(|e| e["outcome"] == "limit-exceeded"),
        "{entries:?}"
    );
    assert!(
        entries
            .iter()
            .all(|e| e["key_fingerprint"].as_str().is_some_and(|f| f.len() == 12))
    );
}

/// The seed's "shared infrastructure" questions on sandbox data: all IPs in the same ASN as X with
/// priority ≥ 80, and all indicators exposing the CVEs X exposes. The expected answers are computed
/// here from the enrichment output; `scry pivot` must give exactly them, from the store.
#[test]
fn pivot_answers_shared_infrastructure_questions() {
    let rt = runtime();
    let sandbox = start(&rt, SandboxConfig::default());
    let home = tempfile::tempdir().expect("tempdir");
    fast_config(home.path(), "concurrency = 4\n");
    let ips: String = (0..300)
        .map(|i| format!("45.{}.{}.{}\n", i % 9, i, (i * 7) % 250 + 1))
        .collect();
    let mut command = scry_at(home.path(), &sandbox.url());
    command.args(["enrich", "--format", "json", "-"]);
    let output = run(command, ips.as_bytes());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let records = records(&output);
    let asn = |r: &Value| r["sources"]["criminalip"]["data"]["asn"].as_u64();
    // What Criminal IP says and what the offline network data says are both facets.
    let asns = |r: &Value| -> Vec<u64> {
        ["criminalip", "geo"]
            .iter()
            .filter_map(|s| r["sources"][*s]["data"]["asn"].as_u64())
            .collect()
    };
    let cves = |r: &Value| -> Vec<String> {
        r["sources"]["criminalip"]["data"]["vulnerabilities"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["cve"].as_str().map(str::to_owned))
            .collect()
    };
    let pivot = |args: &[&str]| -> Vec<String> {
        let mut command = scry(home.path());
        command
            .arg("pivot")
            .args(args)
            .args(["--format", "json", "--limit", "1000"]);
        let output = run(command, b"");
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        let mut found: Vec<String> = serde_json::from_slice::<Vec<Value>>(&output.stdout)
            .expect("json")
            .iter()
            .map(|r| r["indicator"].as_str().expect("indicator").to_owned())
            .collect();
        found.sort();
        found
    };

    // An X whose network holds other high-priority IPs.
    let x = records
        .iter()
        .find(|x| {
            records
                .iter()
                .filter(|r| {
                    r["indicator"] != x["indicator"]
                        && asn(r) == asn(x)
                        && r["priority"].as_u64() >= Some(80)
                })
                .count()
                >= 2
        })
        .expect("the sandbox data has a network with several high-priority IPs");
    let x_ip = x["indicator"].as_str().expect("ip");
    let mut expected: Vec<String> = records
        .iter()
        .filter(|r| {
            r["indicator"] != x["indicator"]
                && asns(r).iter().any(|a| asns(x).contains(a))
                && r["priority"].as_u64() >= Some(80)
        })
        .map(|r| r["indicator"].as_str().expect("ip").to_owned())
        .collect();
    expected.sort();
    assert_eq!(
        pivot(&[x_ip, "--by", "asn", "--min-priority", "80"]),
        expected
    );

    // `scry show` lists the neighbours with how many others share each.
    let mut command = scry(home.path());
    command.args(["show", x_ip, "--format", "json"]);
    let output = run(command, b"");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let shown: Value = serde_json::from_slice(&output.stdout).expect("json");
    let same_asn = records
        .iter()
        .filter(|r| r["indicator"] != x["indicator"] && asn(r) == asn(x))
        .count();
    let asn_text = asn(x).expect("asn").to_string();
    let neighbour = shown["neighbours"]
        .as_array()
        .expect("neighbours")
        .iter()
        .find(|n| n["facet"] == "asn" && n["value"] == asn_text.as_str())
        .unwrap_or_else(|| panic!("asn neighbour in {shown}"));
    assert_eq!(neighbour["others"], same_asn);

    // An X exposing CVEs: everything exposing any of them.
    let x = records
        .iter()
        .find(|r| !cves(r).is_empty())
        .expect("some host exposes CVEs");
    let x_ip = x["indicator"].as_str().expect("ip");
    let wanted = cves(x);
    let mut expected: Vec<String> = records
        .iter()
        .filter(|r| r["indicator"] != x["indicator"] && cves(r).iter().any(|c| wanted.contains(c)))
        .map(|r| r["indicator"].as_str().expect("ip").to_owned())
        .collect();
    expected.sort();
    assert!(!expected.is_empty());
    assert_eq!(pivot(&[x_ip, "--by", "cve"]), expected);

    // The same ASN question page by page (3 at a time) gives the same indicators, each once.
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..200 {
        let mut command = scry(home.path());
        command.args([
            "pivot", x_ip, "--by", "asn", "--format", "json", "--limit", "3",
        ]);
        if let Some(cursor) = &after {
            command.args(["--after", cursor]);
        }
        let output = run(command, b"");
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        let page: Vec<Value> = serde_json::from_slice(&output.stdout).expect("json");
        paged.extend(
            page.iter()
                .map(|r| r["indicator"].as_str().expect("ip").to_owned()),
        );
        after = text(&output.stderr)
            .lines()
            .find_map(|l| l.strip_prefix("more may follow: add --after "))
            .map(str::to_owned);
        if after.is_none() {
            break;
        }
    }
    let mut unique = paged.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), paged.len(), "no indicator on two pages");
    assert_eq!(unique, pivot(&[x_ip, "--by", "asn"]));

    // Its /24, from the indicator itself.
    let subnet_mates: Vec<String> = pivot(&[x_ip, "--by", "subnet"]);
    let prefix: String = x_ip
        .rsplit_once('.')
        .map(|(p, _)| p.to_owned())
        .expect("prefix");
    assert!(
        subnet_mates
            .iter()
            .all(|ip| ip.starts_with(&format!("{prefix}."))),
        "{subnet_mates:?}"
    );
}

/// Paid answers are kept in the store: a second run, a new process, asks the service nothing for
/// answers still within their TTL, and `--force` asks again.
#[test]
fn answers_kept_in_the_store_are_not_paid_for_twice() {
    let rt = runtime();
    let sandbox = start(
        &rt,
        SandboxConfig {
            scan_duration: Duration::from_millis(50),
            ..SandboxConfig::default()
        },
    );
    let home = tempfile::tempdir().expect("tempdir");
    fast_config(home.path(), "");
    let input = b"45.155.205.233\n185.220.101.47\nphish-login.example-store.net\n";
    let enrich = |extra: &[&str]| {
        let mut command = scry_at(home.path(), &sandbox.url());
        command
            .args(["enrich", "--format", "json"])
            .args(extra)
            .arg("-");
        let output = run(command, input);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        records(&output)
    };
    let first = enrich(&[]);
    assert!(first.iter().all(|r| r["status"] == "enriched"), "{first:?}");
    let paid = sandbox.log().entries().len();
    assert!(paid >= 4, "two IP reports and a domain flow");

    let second = enrich(&[]);
    assert!(second.iter().all(|r| r["status"] == "cached"), "{second:?}");
    assert_eq!(
        second
            .iter()
            .map(|r| r["sources"]["criminalip"]["credits"].as_u64())
            .collect::<Vec<_>>(),
        [Some(0); 3]
    );
    let calls_after_second: Vec<String> = sandbox.log().entries()[paid..]
        .iter()
        .map(|e| e.path.clone())
        .collect();
    assert_eq!(
        calls_after_second,
        ["/v1/user/me"],
        "only the pre-flight account check: every answer came from the store"
    );
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a["priority"], b["priority"]);
        assert_eq!(
            a["sources"]["criminalip"]["data"],
            b["sources"]["criminalip"]["data"]
        );
    }

    let forced = enrich(&["--force"]);
    assert!(forced.iter().all(|r| r["status"] == "enriched"));
    assert!(
        super::requests_to(&sandbox, "/v1/asset/ip/report") >= 4,
        "--force asked again"
    );
}

/// `scry export --format stix` is the graph of what the store holds: one indicator per enriched
/// observable with the stored id, priority as `x_opencti_score`, the input's TLP on every object,
/// every reference resolvable inside the bundle, and the same bytes on a second export.
#[test]
fn stix_export_is_the_graph_of_the_store() {
    let rt = runtime();
    let sandbox = start(
        &rt,
        SandboxConfig {
            scan_duration: Duration::from_millis(20),
            ..SandboxConfig::default()
        },
    );
    let home = tempfile::tempdir().expect("tempdir");
    fast_config(home.path(), "");
    let mut command = scry_at(home.path(), &sandbox.url());
    command.args(["enrich", "--tlp", "green", "--format", "json", "-"]);
    let output = run(
        command,
        b"45.155.205.233\n91.92.241.10\nsecure-update.xyz\nhxxps://login-micros0ft-365[.]com/owa\n",
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let records = records(&output);

    let export = |file: &str| -> String {
        let path = home.path().join(file);
        let mut command = scry(home.path());
        command
            .args(["export", "--format", "stix", "--output"])
            .arg(&path);
        let output = run(command, b"");
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        std::fs::read_to_string(&path).expect("export written")
    };
    let first = export("a.json");
    assert_eq!(first, export("b.json"), "exports are deterministic");
    let bundle: Value = serde_json::from_str(&first).expect("bundle is JSON");
    assert_eq!(bundle["type"], "bundle");
    let objects = bundle["objects"].as_array().expect("objects");
    let by_id: std::collections::HashMap<&str, &Value> = objects
        .iter()
        .map(|o| (o["id"].as_str().expect("id"), o))
        .collect();
    assert_eq!(by_id.len(), objects.len(), "no object is written twice");
    let green = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da";
    for object in objects {
        assert_eq!(object["object_marking_refs"][0], green, "{object}");
        for key in ["source_ref", "target_ref", "created_by_ref"] {
            if let Some(target) = object[key].as_str() {
                assert!(by_id.contains_key(target), "{key} {target} of {object}");
            }
        }
    }
    for record in &records {
        let id = record["stix_id"].as_str().expect("stix id");
        assert!(by_id.contains_key(id), "{id} exported");
        let pattern_value = record["indicator"].as_str().expect("indicator");
        let indicator = objects
            .iter()
            .find(|o| o["type"] == "indicator" && o["name"] == pattern_value)
            .unwrap_or_else(|| panic!("an indicator for {pattern_value}"));
        assert_eq!(indicator["x_opencti_score"], record["priority"]);
        assert_eq!(
            indicator["external_references"][0]["url"],
            record["sources"]["criminalip"]["report_url"]
        );
    }
    let kinds: std::collections::BTreeSet<&str> = objects
        .iter()
        .filter_map(|o| o["relationship_type"].as_str())
        .collect();
    for kind in [
        "belongs-to",
        "consists-of",
        "indicates",
        "located-at",
        "resolves-to",
    ] {
        assert!(kinds.contains(kind), "{kind} in {kinds:?}");
    }
    // The OASIS validator, strict, nothing disabled: the certificates (observables without a
    // hash or serial number, so UUIDv4 ids as STIX prescribes) are the only 103 findings, and
    // there are some, so the check ran on them.
    if let Some((checked, problems, (_, uuid_v4_certificates))) =
        super::oasis_strict(&home.path().join("a.json"))
    {
        assert_eq!(checked, objects.len() as u64);
        assert!(problems.is_empty(), "{problems:#?}");
        let certificates = objects
            .iter()
            .filter(|o| o["type"] == "x509-certificate")
            .count() as u64;
        assert!(certificates > 0, "the export has certificates");
        assert_eq!(uuid_v4_certificates, certificates);
    }
}

/// Re-enriching after the service's view changed records what moved, and `scry show` lists it.
#[test]
fn re_enrichment_shows_what_changed() {
    let rt = runtime();
    let home = tempfile::tempdir().expect("tempdir");
    fast_config(home.path(), "");
    let ips: String = (1..=40)
        .map(|i| format!("45.155.{i}.{}\n", i * 3))
        .collect();
    let enrich = |seed: u64| -> Vec<Value> {
        let sandbox = start(
            &rt,
            SandboxConfig {
                seed,
                ..SandboxConfig::default()
            },
        );
        let mut command = scry_at(home.path(), &sandbox.url());
        command.args(["enrich", "--force", "--format", "json", "-"]);
        let output = run(command, ips.as_bytes());
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        records(&output)
    };
    let before = enrich(0);
    let after = enrich(7);
    // Output is sorted by priority: pair the runs' records by indicator.
    let (old, new) = after
        .iter()
        .find_map(|b| {
            let a = before.iter().find(|a| a["indicator"] == b["indicator"])?;
            (a["priority"] != b["priority"]).then_some((a, b))
        })
        .expect("another seed moves some priority");
    let ip = new["indicator"].as_str().expect("ip");
    let mut command = scry(home.path());
    command.args(["show", ip, "--format", "json"]);
    let output = run(command, b"");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let shown: Value = serde_json::from_slice(&output.stdout).expect("json");
    let history = shown["history"].as_array().expect("history");
    assert_eq!(history.len(), 2, "{history:?}");
    let change = &history[1]["change"];
    assert_eq!(change["previous_priority"], old["priority"]);
    assert_eq!(change["priority"], new["priority"]);
    let tags = |r: &Value| -> Vec<String> {
        r["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect()
    };
    let added: Vec<String> = tags(new)
        .into_iter()
        .filter(|t| !tags(old).contains(t))
        .collect();
    assert_eq!(change["new_tags"], serde_json::json!(added));

    let mut command = scry(home.path());
    command.args(["show", ip]);
    let output = run(command, b"");
    let shown = text(&output.stdout);
    let delta =
        new["priority"].as_i64().expect("priority") - old["priority"].as_i64().expect("priority");
    assert!(
        shown.contains(&format!("{delta:+} from {}", old["priority"])),
        "{shown}"
    );
    assert!(shown.contains("first seen"), "{shown}");
}

/// Two processes calling with the same key on one store keep under one rate limit together:
/// each alone would send 4 calls a second, and the service sees at most 4 in any second from
/// both, with nothing refused.
#[test]
fn processes_sharing_a_store_share_one_rate_limit() {
    let rt = runtime();
    let sandbox = start(
        &rt,
        SandboxConfig {
            rate_limit: Some((4, Duration::from_secs(1))),
            ..SandboxConfig::default()
        },
    );
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        home.path().join("scry.toml"),
        "[sources.criminalip]\nmax_requests = 4\nper_seconds = 1.0\nconcurrency = 4\nretries = 0\n",
    )
    .expect("write config");
    let processes: Vec<_> = (0..2)
        .map(|p| {
            let input: String = (0..10)
                .map(|n| format!("45.{}.{}.{}\n", 60 + p, n * 7, n + 1))
                .collect();
            let mut command = scry_at(home.path(), &sandbox.url());
            command.args(["enrich", "--format", "json", "-"]);
            std::thread::spawn(move || run(command, input.as_bytes()))
        })
        .collect();
    for process in processes {
        let output = process.join().expect("process");
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        let records = records(&output);
        assert_eq!(records.len(), 10);
        assert!(
            records.iter().all(|r| r["status"] == "enriched"),
            "{records:?}"
        );
    }
    let log = sandbox.log().entries();
    assert!(
        log.iter().all(|e| e.outcome == "ok"),
        "nothing was refused: {:?}",
        log.iter().map(|e| &e.outcome).collect::<Vec<_>>()
    );
    let busiest = (0..log.len())
        .map(|i| {
            log[i..]
                .iter()
                .take_while(|e| e.at_ms - log[i].at_ms < 1000.0)
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(
        busiest <= 4,
        "{busiest} calls in one second from two processes"
    );
    assert!(log.len() >= 20, "{} calls", log.len());
}

/// The key check of `scry sources test` takes its place in the rate window every process on the
/// store shares: an enrichment right after it waits for its turn instead of drawing a 429.
#[test]
fn the_key_check_shares_the_rate_window_with_the_calls_after_it() {
    let rt = runtime();
    let sandbox = start(
        &rt,
        SandboxConfig {
            rate_limit: Some((1, Duration::from_secs(1))),
            ..SandboxConfig::default()
        },
    );
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        home.path().join("scry.toml"),
        "[sources.criminalip]\nmax_requests = 1\nper_seconds = 1.0\nretries = 0\n",
    )
    .expect("write config");
    let mut test = scry_at(home.path(), &sandbox.url());
    test.args(["sources", "test", "criminalip"]);
    let tested = run(test, b"");
    assert_eq!(tested.status.code(), Some(0), "{}", text(&tested.stderr));
    let mut enrich = scry_at(home.path(), &sandbox.url());
    enrich.args(["enrich", "--format", "json", "-"]);
    let enriched = run(enrich, b"45.155.205.233\n");
    assert_eq!(
        enriched.status.code(),
        Some(0),
        "{}",
        text(&enriched.stderr)
    );
    let log = sandbox.log().entries();
    assert_eq!(log.len(), 3, "two key checks and one lookup: {log:#?}");
    assert!(
        log.iter().all(|e| e.outcome == "ok"),
        "nothing was refused: {:?}",
        log.iter().map(|e| &e.outcome).collect::<Vec<_>>()
    );
}

/// A refused concurrent call answered with HTTP 403 (as it has been seen from the service) is a
/// concurrency refusal, read from its message: it is retried, every indicator is enriched, and
/// nothing is skipped for a budget or alerted as spent credits. Read by its status first, it
/// stopped every call until the next UTC day.
#[test]
fn a_concurrent_refusal_sent_as_403_is_retried_not_taken_for_spent_credits() {
    let rt = runtime();
    let sandbox = start(
        &rt,
        SandboxConfig {
            latency_median: Duration::from_millis(40),
            latency_p99: Duration::from_millis(60),
            refuse_concurrent: true,
            concurrent_status: 403,
            ..SandboxConfig::default()
        },
    );
    let home = tempfile::tempdir().expect("tempdir");
    fast_config(home.path(), "concurrency = 3\nretries = 10\n");
    let mut command = scry_at(home.path(), &sandbox.url());
    command.args(["enrich", "--format", "json", "-"]);
    let ips: String = (1..=12).map(|i| format!("45.{i}.2.2\n")).collect();
    let output = run(command, ips.as_bytes());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let log = sandbox.log().entries();
    assert!(
        log.iter()
            .any(|e| e.outcome == "concurrent-refused" && e.status == 403),
        "the positive control: the sandbox refused concurrent calls with 403"
    );
    let records = records(&output);
    assert_eq!(
        records.iter().filter(|r| r["status"] == "enriched").count(),
        12,
        "{}",
        text(&output.stderr)
    );
    assert!(records.iter().all(|r| r["skip_reason"].is_null()));
    let stderr = text(&output.stderr);
    assert!(!stderr.contains("credits are used up"), "{stderr}");
    let history = super::run_args(home.path(), &["history", "--kind", "budget"], b"");
    assert_eq!(text(&history.stdout).trim(), "", "no budget event");
}

/// The golden bundles (every documented Criminal IP answer shape, mapped) pass the OASIS
/// validator in strict mode with nothing disabled, but for the two findings `oasis_strict`
/// explains; the domain report's certificates are among them, so check 103 ran on them.
#[test]
fn golden_bundles_pass_the_strict_oasis_validator() {
    let golden = super::workspace().join("crates/scry-sources/tests/it/golden");
    let mut bundles = 0;
    let mut certificates = 0;
    for entry in std::fs::read_dir(&golden).expect("golden bundles") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let Some((checked, problems, (_, uuid_v4_certificates))) = super::oasis_strict(&path)
        else {
            return;
        };
        assert!(checked > 0, "{}", path.display());
        assert!(problems.is_empty(), "{}: {problems:#?}", path.display());
        bundles += 1;
        certificates += uuid_v4_certificates;
    }
    assert!(bundles >= 7, "{bundles} golden bundles");
    assert!(certificates > 0, "the golden bundles have certificates");
}
