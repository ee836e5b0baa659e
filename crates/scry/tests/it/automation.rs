//! Automation end to end: a mixed batch enriched against the Criminal IP sandbox, rules firing
//! into a local webhook receiver, a ticket system and a blocklist, and the history of every step.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scry_sandbox::{Sandbox, SandboxConfig};
use serde_json::Value;

use super::{run, run_args, runtime, scry, start_sandbox, text};

/// A request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) path: String,
    pub(crate) authorization: Option<String>,
    pub(crate) body: Value,
}

/// A loopback server for tests: one thread takes connections one at a time and hands each to
/// `serve` with the log it keeps. It stops by itself when dropped or after two minutes.
pub(crate) struct Loopback<T> {
    pub(crate) port: u16,
    log: Arc<Mutex<Vec<T>>>,
    stop: Arc<AtomicBool>,
}

impl<T: Clone + Send + 'static> Loopback<T> {
    pub(crate) fn start(
        mut serve: impl FnMut(TcpStream, &Mutex<Vec<T>>) + Send + 'static,
    ) -> Loopback<T> {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("address").port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (kept, halt) = (Arc::clone(&log), Arc::clone(&stop));
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !halt.load(Ordering::SeqCst) && Instant::now() < deadline {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                stream.set_nonblocking(false).expect("blocking");
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .expect("timeout");
                serve(stream, &kept);
            }
        });
        Loopback { port, log, stop }
    }

    /// What it took so far.
    pub(crate) fn log(&self) -> Vec<T> {
        self.log.lock().expect("not poisoned").clone()
    }
}

impl<T> Drop for Loopback<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// An HTTP request read from a loopback connection, with the connection to answer on.
pub(crate) struct Request {
    /// The request target (`/path?query`).
    pub(crate) target: String,
    /// Header names in lower case.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    pub(crate) stream: TcpStream,
}

impl Request {
    pub(crate) fn read(stream: TcpStream) -> Option<Request> {
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        reader.read_line(&mut request_line).ok()?;
        let target = request_line.split_whitespace().nth(1)?.to_owned();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap_or(("", ""));
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let length = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .and_then(|(_, value)| value.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        let _ = reader.read_exact(&mut body);
        Some(Request {
            target,
            headers,
            body,
            stream: reader.into_inner(),
        })
    }

    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value.clone())
    }
}

/// A loopback HTTP receiver standing in for Slack and Jira: it records each request and answers
/// 200 (with a Jira-style `{"key": …}` for tickets).
pub(crate) fn http_receiver() -> Loopback<Received> {
    let mut tickets = 0;
    Loopback::start(move |stream, log| {
        let Some(mut request) = Request::read(stream) else {
            return;
        };
        let path = request.target.clone();
        let answer = if path.starts_with("/ticket") {
            tickets += 1;
            format!("{{\"id\": \"100{tickets}\", \"key\": \"SOC-{tickets}\"}}")
        } else {
            "ok".to_owned()
        };
        log.lock().expect("not poisoned").push(Received {
            path,
            authorization: request.header("authorization"),
            body: serde_json::from_slice(&request.body).unwrap_or(Value::Null),
        });
        let _ = write!(
            request.stream,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        );
    })
}

/// A message the mail sink took.
#[derive(Debug, Clone)]
struct Mail {
    from: String,
    to: Vec<String>,
    /// Headers and body as sent, dot-stuffing undone.
    data: String,
}

impl Mail {
    fn subject(&self) -> String {
        self.data
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .unwrap_or("")
            .to_owned()
    }
}

/// A loopback SMTP server standing in for a mail relay. It speaks just enough SMTP (EHLO, MAIL,
/// RCPT, DATA, RSET, NOOP, QUIT) to take messages, and records each.
fn mail_sink() -> Loopback<Mail> {
    Loopback::start(|stream, log| {
        let _ = smtp_session(stream, log);
    })
}

fn smtp_session(stream: TcpStream, log: &Mutex<Vec<Mail>>) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    write!(writer, "220 sink ESMTP\r\n")?;
    let (mut from, mut to) = (String::new(), Vec::new());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let address = || {
            command
                .split_once('<')
                .and_then(|(_, rest)| rest.split_once('>'))
                .map_or(String::new(), |(a, _)| a.to_owned())
        };
        match verb.as_str() {
            "EHLO" | "HELO" => write!(writer, "250-sink\r\n250 8BITMIME\r\n")?,
            "MAIL" => {
                from = address();
                write!(writer, "250 OK\r\n")?;
            }
            "RCPT" => {
                to.push(address());
                write!(writer, "250 OK\r\n")?;
            }
            "DATA" => {
                write!(writer, "354 go on\r\n")?;
                let mut data = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line)? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                log.lock().expect("not poisoned").push(Mail {
                    from: std::mem::take(&mut from),
                    to: std::mem::take(&mut to),
                    data,
                });
                write!(writer, "250 queued\r\n")?;
            }
            "RSET" | "NOOP" => write!(writer, "250 OK\r\n")?,
            "QUIT" => {
                write!(writer, "221 bye\r\n")?;
                return Ok(());
            }
            _ => write!(writer, "502 not here\r\n")?,
        }
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

/// `scry --store STORE enrich --format json --no-progress` against the sandbox, with its key.
fn enrich_command(home: &Path, sandbox: &Sandbox, store: &str) -> Command {
    let mut command = scry(home);
    command
        .env("CRIMINALIP_API_KEY", KEY)
        .env("CRIMINALIP_BASE_URL", sandbox.url())
        .args([
            "--store",
            store,
            "enrich",
            "--format",
            "json",
            "--no-progress",
        ]);
    command
}

pub(crate) fn jsonl(output: &[u8]) -> Vec<Value> {
    text(output)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[test]
fn rules_act_on_high_priority_results_and_history_shows_every_step() {
    let rt = runtime();
    let sandbox = start_sandbox(&rt, SandboxConfig::default());
    let receiver = http_receiver();
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
        let mut command = enrich_command(home.path(), &sandbox, &store);
        command
            .env("SCRY_TEST_JIRA_AUTH", "Basic c2NyeTpzM2NyZXQ=")
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
    let asked = super::asked(&sandbox);
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
    let received = receiver.log();
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
    let before = receiver.log().len();
    let again = enrich(&[]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    // Answers come from the cache, the state is unchanged: block-high matches again on the new
    // observation, but tickets are not opened twice.
    let received = receiver.log();
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
    assert!(text(&output.stderr).contains("7 rules loaded, no problems"));
    for rule in [
        "re-enrich-after-budget",
        "block-high",
        "escalate-bad-isp",
        "credits-low",
    ] {
        assert!(text(&output.stdout).contains(rule));
    }
}

#[test]
fn budget_alerts_and_high_priority_indicators_reach_mail_and_chat() {
    let rt = runtime();
    let sandbox = start_sandbox(&rt, SandboxConfig::default());
    let receiver = http_receiver();
    let sink = mail_sink();
    let home = tempfile::tempdir().expect("tempdir");
    let config = format!(
        r#"
[sources.criminalip]
max_requests = 50
daily_credits = 4
alert_percent = 50

[automation.channels.soc]
url = "http://127.0.0.1:{http}/hook/slack"
template = "slack"

[automation.channels.mail]
url = "smtp://127.0.0.1:{smtp}"
starttls = false
from = "scry <scry@soc.example.org>"
to = ["oncall@soc.example.org", "Intel Team <intel@soc.example.org>"]

[[rules]]
name = "credits-low"
on = ["budget-alert"]
when = 'budget.event == "alert"'
actions = [{{ do = "notify", channel = "mail" }}, {{ do = "notify", channel = "soc" }}]

[[rules]]
name = "credits-gone"
on = ["budget-alert"]
when = 'budget.event == "exhausted" && budget.source == "criminalip"'
actions = [{{ do = "notify", channel = "soc" }}]

[[rules]]
name = "mail-high"
on = ["enriched"]
when = 'indicator.priority >= 60'
actions = [{{ do = "notify", channel = "mail" }}]
"#,
        http = receiver.port,
        smtp = sink.port
    );
    std::fs::write(home.path().join("scry.toml"), config).expect("write config");
    let store = format!("sqlite://{}", home.path().join("scry.db").display());
    let enrich = |input: &str| {
        let mut command = enrich_command(home.path(), &sandbox, &store);
        command.arg("-");
        run(command, input.as_bytes())
    };
    let history = |args: &[&str]| -> Vec<Value> {
        let mut all = vec!["--store", store.as_str(), "history", "--format", "jsonl"];
        all.extend_from_slice(args);
        jsonl(&run_args(home.path(), &all, b"").stdout)
    };

    // 4 credits, an alert at 50 %: the 2nd call alerts, the 4th spends the last credit, the 5th
    // address waits for tomorrow.
    let first =
        enrich("45.155.205.233\n185.220.101.47\n193.32.162.159\n91.92.241.10\n5.188.86.172\n");
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let records: Vec<Value> = serde_json::from_slice(&first.stdout).expect("JSON");
    let skipped: Vec<&Value> = records
        .iter()
        .filter(|r| r["skip_reason"] == "budget")
        .collect();
    assert_eq!(skipped.len(), 1, "{records:#?}");
    let high: Vec<&str> = records
        .iter()
        .filter(|r| r["status"] == "enriched" && r["priority"].as_u64().unwrap_or(0) >= 60)
        .map(|r| r["indicator"].as_str().expect("indicator"))
        .collect();
    assert!(
        !high.is_empty(),
        "the batch has high-priority addresses: {records:#?}"
    );

    let budget = history(&["--kind", "budget"]);
    let mut outcomes: Vec<&str> = budget
        .iter()
        .map(|e| e["outcome"].as_str().unwrap_or(""))
        .collect();
    outcomes.sort();
    assert_eq!(outcomes, ["alert", "exhausted"], "{budget:#?}");
    assert!(budget.iter().all(|e| e["origin"] == "source:criminalip"));

    // The alert went out by mail to both recipients, and to chat; the exhaustion to chat only.
    let mails = sink.log();
    let credit_mails: Vec<&Mail> = mails
        .iter()
        .filter(|m| m.subject().contains("credits"))
        .collect();
    assert_eq!(credit_mails.len(), 1, "{mails:#?}");
    let alert = credit_mails[0];
    assert_eq!(alert.from, "scry@soc.example.org");
    assert_eq!(
        alert.to,
        ["oncall@soc.example.org", "intel@soc.example.org"]
    );
    assert_eq!(
        alert.subject(),
        "[scry] criminalip credits: daily credits at 50 % (2 of 4)"
    );
    assert!(
        alert.data.contains("Used: 2 of 4 credits (50 %)"),
        "{}",
        alert.data
    );
    let chat: Vec<String> = receiver
        .log()
        .iter()
        .map(|r| r.body["text"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(chat.len(), 2, "{chat:#?}");
    assert!(
        chat.iter()
            .any(|t| t.contains("daily credits at 50 % (2 of 4)") && t.contains("credits-low")),
        "{chat:#?}"
    );
    assert!(
        chat.iter()
            .any(|t| t.contains("daily credits spent (4 of 4)") && t.contains("credits-gone")),
        "{chat:#?}"
    );

    // One mail per high-priority indicator, saying why.
    for ip in &high {
        let mail = mails
            .iter()
            .find(|m| m.subject().contains(ip))
            .unwrap_or_else(|| panic!("no mail for {ip}: {mails:#?}"));
        assert!(
            mail.subject().ends_with("(mail-high)"),
            "{}",
            mail.subject()
        );
        assert!(mail.data.contains("Why:"), "{}", mail.data);
    }
    assert_eq!(mails.len(), high.len() + 1);

    let actions = history(&["--rule", "credits-low"]);
    let done: Vec<&Value> = actions.iter().filter(|e| e["kind"] == "action").collect();
    assert_eq!(done.len(), 2, "{actions:#?}");
    assert!(
        done.iter()
            .all(|e| e["outcome"] == "ok" && e["indicator"].is_null()),
        "{done:#?}"
    );

    // Another process knows today's credits are spent: it skips, and does not alert again.
    let second = enrich("141.98.10.63\n");
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stderr));
    let records: Vec<Value> = serde_json::from_slice(&second.stdout).expect("JSON");
    assert_eq!(records[0]["skip_reason"], "budget", "{records:#?}");
    assert_eq!(sink.log().len(), mails.len(), "no second alert");
    assert_eq!(receiver.log().len(), 2);
    rt.block_on(sandbox.stop());
}
