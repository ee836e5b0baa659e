//! Automation end to end: a mixed batch enriched against the Criminal IP sandbox, rules firing
//! into a local webhook receiver, a ticket system and a blocklist, and the history of every step.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scry_sandbox::SandboxConfig;
use serde_json::Value;

use super::{run, run_args, runtime, scry, start_sandbox, text};

/// A request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    authorization: Option<String>,
    body: Value,
}

/// A loopback HTTP receiver standing in for Slack and Jira: it records each request and answers
/// 200 (with a Jira-style `{"key": …}` for tickets). It stops by itself when dropped or after two
/// minutes.
struct Receiver {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("address").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, halt) = (Arc::clone(&received), Arc::clone(&stop));
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut tickets = 0;
            while !halt.load(Ordering::SeqCst) && Instant::now() < deadline {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                stream.set_nonblocking(false).expect("blocking");
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .expect("timeout");
                let mut reader = BufReader::new(stream);
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("")
                    .to_owned();
                let (mut length, mut authorization) = (0, None);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
                        break;
                    }
                    let (name, value) = line.split_once(':').unwrap_or(("", ""));
                    match name.trim().to_ascii_lowercase().as_str() {
                        "content-length" => length = value.trim().parse().unwrap_or(0),
                        "authorization" => authorization = Some(value.trim().to_owned()),
                        _ => {}
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let answer = if path.starts_with("/ticket") {
                    tickets += 1;
                    format!("{{\"id\": \"100{tickets}\", \"key\": \"SOC-{tickets}\"}}")
                } else {
                    "ok".to_owned()
                };
                log.lock().expect("not poisoned").push(Received {
                    path,
                    authorization,
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                });
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        Receiver {
            port,
            received,
            stop,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("not poisoned").clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

const KEY: &str = "ck-live-3b9d0e27aa51";

fn config(home: &Path, receiver_port: u16) {
    let text = format!(
        r#"
[egress]
allowlist = ["8.8.8.0/24", "*.corp.acme-industries.com"]

[sources.criminalip]
max_requests = 50
retry_base_ms = 10
scan_poll_seconds = 0.05

[automation.lists]
watched_asns = {{ entries = ["AS64500"] }}

[automation.channels.soc]
url = "http://127.0.0.1:{receiver_port}/hook/slack"
template = "slack"

[automation.tickets.jira]
url = "http://127.0.0.1:{receiver_port}/ticket/jira"
template = "jira"
authorization_env = "SCRY_TEST_JIRA_AUTH"
params = {{ project = "SEC" }}

[automation.blocklists.firewall]
days = 7
min_priority = 50

[[rules]]
name = "block-high"
on = ["enriched"]
when = 'indicator.priority >= 60'
actions = [
  {{ do = "block", list = "firewall" }},
  {{ do = "notify", channel = "soc" }},
  {{ do = "ticket", system = "jira" }},
  {{ do = "tag", tag = "auto-blocked" }},
]

[[rules]]
name = "investigate-tagged"
on = ["updated"]
when = '"auto-blocked" in indicator.tags && indicator.status == "new"'
actions = [{{ do = "set-status", status = "investigating" }}]
"#
    );
    std::fs::write(home.join("scry.toml"), text).expect("write config");
}

fn jsonl(output: &[u8]) -> Vec<Value> {
    text(output)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[test]
fn rules_act_on_high_priority_results_and_history_shows_every_step() {
    let rt = runtime();
    let sandbox = start_sandbox(&rt, SandboxConfig::default());
    let receiver = Receiver::start();
    let home = tempfile::tempdir().expect("tempdir");
    config(home.path(), receiver.port);
    let public = [
        "45.155.205.233",
        "185.220.101.47",
        "193.32.162.159",
        "91.92.241.10",
        "5.188.86.172",
        "141.98.10.63",
        "80.94.95.115",
        "194.26.29.102",
    ];
    let mut batch = String::from("indicator,tlp\n");
    for ip in public {
        batch.push_str(&format!("{ip},amber\n"));
    }
    batch.push_str(
        "10.20.4.17,amber\n192.168.1.1,green\n8.8.8.8,green\nhost.corp.acme-industries.com,green\n",
    );
    batch.push_str("77.83.36.5,red\n");
    let input = home.path().join("batch.csv");
    std::fs::write(&input, batch).expect("write batch");

    let store = format!("sqlite://{}", home.path().join("scry.db").display());
    let enrich = |extra: &[&str]| {
        let mut command = scry(home.path());
        command
            .env("CRIMINALIP_API_KEY", KEY)
            .env("CRIMINALIP_BASE_URL", sandbox.url())
            .env("SCRY_TEST_JIRA_AUTH", "Basic c2NyeTpzM2NyZXQ=")
            .args([
                "--store",
                &store,
                "enrich",
                "--format",
                "json",
                "--no-progress",
            ])
            .args(extra)
            .arg(&input);
        run(command, b"")
    };

    let check = {
        let mut command = scry(home.path());
        command
            .env("SCRY_TEST_JIRA_AUTH", "x")
            .env("CRIMINALIP_API_KEY", KEY)
            .args(["rules", "check"]);
        run(command, b"")
    };
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stderr));
    assert!(text(&check.stderr).contains("2 rules loaded, no problems"));

    let output = enrich(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let records: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON");
    let high: Vec<String> = records
        .iter()
        .filter(|r| r["priority"].as_u64().unwrap_or(0) >= 60)
        .map(|r| r["indicator"].as_str().expect("indicator").to_owned())
        .collect();
    assert!(
        !high.is_empty() && high.len() < public.len(),
        "the batch has high and low priority addresses: {records:#?}"
    );
    let stderr = text(&output.stderr);
    let n = high.len();
    assert!(
        stderr.contains(&format!(
            "rules: {n} matched, {} actions queued; actions: {} done, 0 failed",
            n * 4,
            n * 5
        )),
        "four actions per match, and the chained set-status: {stderr}"
    );

    // Private, allowlisted and TLP:RED indicators never reached the sandbox.
    let asked: Vec<String> = sandbox
        .log()
        .entries()
        .iter()
        .map(|e| format!("{}?{}", e.path, e.query))
        .collect();
    for never in [
        "10.20.4.17",
        "192.168.1.1",
        "8.8.8.8",
        "host.corp.acme-industries.com",
        "77.83.36.5",
    ] {
        assert!(
            !asked.iter().any(|a| a.contains(never)),
            "{never} reached the sandbox: {asked:#?}"
        );
    }

    // The webhook got one Slack message per high-priority indicator, with it in the text.
    let received = receiver.received();
    let slack: Vec<&Received> = received
        .iter()
        .filter(|r| r.path == "/hook/slack")
        .collect();
    assert_eq!(slack.len(), high.len(), "{received:#?}");
    for ip in &high {
        assert!(
            slack.iter().any(
                |r| r.body["text"].as_str().unwrap_or("").contains(ip.as_str())
                    && r.body["text"].as_str().unwrap_or("").contains("block-high")
            ),
            "no Slack message for {ip}: {slack:#?}"
        );
    }
    // One Jira ticket each, with the configured project and authorization.
    let tickets: Vec<&Received> = received
        .iter()
        .filter(|r| r.path == "/ticket/jira")
        .collect();
    assert_eq!(tickets.len(), high.len());
    for ticket in &tickets {
        assert_eq!(ticket.body["fields"]["project"]["key"], "SEC");
        assert_eq!(
            ticket.authorization.as_deref(),
            Some("Basic c2NyeTpzM2NyZXQ=")
        );
        let summary = ticket.body["fields"]["summary"].as_str().expect("summary");
        assert!(
            high.iter().any(|ip| summary.contains(ip.as_str())),
            "{summary}"
        );
    }

    // The EDL holds exactly the high-priority addresses.
    let edl = run_args(
        home.path(),
        &[
            "--store", &store, "export", "--format", "edl", "--list", "firewall",
        ],
        b"",
    );
    assert_eq!(edl.status.code(), Some(0), "{}", text(&edl.stderr));
    let mut listed: Vec<String> = text(&edl.stdout).lines().map(str::to_owned).collect();
    let mut expected = high.clone();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);

    // History: skips with their reasons, paid calls, matches, actions and the chained rule.
    let history = run_args(
        home.path(),
        &[
            "--store", &store, "history", "--format", "jsonl", "--limit", "1000",
        ],
        b"",
    );
    let events = jsonl(&history.stdout);
    let find = |kind: &str, indicator: &str, outcome: &str| {
        events
            .iter()
            .any(|e| e["kind"] == kind && e["indicator"] == indicator && e["outcome"] == outcome)
    };
    assert!(find("skip", "10.20.4.17", "private"), "{events:#?}");
    assert!(find("skip", "8.8.8.8", "allowlisted"));
    assert!(find("skip", "host.corp.acme-industries.com", "allowlisted"));
    assert!(find("skip", "77.83.36.5", "tlp"));
    for ip in &high {
        assert!(find("call", ip, "ok"), "no paid call recorded for {ip}");
        assert!(find("rule", ip, "matched"));
        for action in ["block", "notify", "ticket", "tag", "set-status"] {
            assert!(
                events.iter().any(|e| e["indicator"] == ip.as_str()
                    && e["action"] == action
                    && e["outcome"] == "ok"),
                "{ip}: no successful {action}: {events:#?}"
            );
        }
    }
    let ticket_event = events
        .iter()
        .find(|e| e["action"] == "ticket" && e["outcome"] == "ok")
        .expect("a ticket event");
    assert!(
        ticket_event["detail"]["did"]
            .as_str()
            .expect("did")
            .starts_with("ticket SOC-")
    );
    assert!(
        !text(&history.stdout).contains("c2NyeTpzM2NyZXQ="),
        "the ticket system's credentials never reach the history"
    );

    // `rules test` explains without acting; a second run acts on nothing twice.
    let first_high = high[0].as_str();
    let test = {
        let mut command = scry(home.path());
        command
            .env("SCRY_TEST_JIRA_AUTH", "x")
            .env("CRIMINALIP_API_KEY", KEY)
            .args(["--store", &store, "rules", "test", first_high]);
        run(command, b"")
    };
    let shown = text(&test.stdout);
    assert!(
        shown.contains("would fire   block-high (on enriched)"),
        "{shown}\n{}",
        text(&test.stderr)
    );
    assert!(shown.contains("→ open a jira ticket"));
    let before = receiver.received().len();
    let again = enrich(&[]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    // Answers come from the cache, the state is unchanged: block-high matches again on the new
    // observation, but tickets are not opened twice.
    let received = receiver.received();
    let new_tickets = received[before..]
        .iter()
        .filter(|r| r.path == "/ticket/jira")
        .count();
    assert_eq!(new_tickets, 0, "a ticket is open already for each");
    rt.block_on(sandbox.stop());
}

#[test]
fn the_example_playbooks_load() {
    let home = tempfile::tempdir().expect("tempdir");
    let config = super::workspace().join("examples/automation/scry.toml");
    let output = run_args(
        home.path(),
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "rules",
            "check",
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("5 rules loaded, no problems"));
    for rule in ["re-enrich-after-budget", "block-high", "escalate-bad-isp"] {
        assert!(text(&output.stdout).contains(rule));
    }
}
