//! One pipeline run unattended, against the Criminal IP sandbox: what scry knew survives a spent
//! budget, a vendor outage and a shell without the key; refreshes alert once per real change;
//! a dry run leaves no trace that changes the real run; a rule's `enrich` is paid for and counted
//! like any other call; a silent mail relay holds up neither other jobs nor a stopping worker.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use scry_sandbox::{Faults, Sandbox, SandboxConfig};
use serde_json::Value;

use super::automation::{Loopback, Received, http_receiver, jsonl};
use super::{run, run_args, runtime, scry, start_sandbox, text};

const KEY: &str = "ck-live-5e0c1d94be27";

/// Public addresses the sandbox reports on; some of them score high under seed 0.
const ADDRESSES: [&str; 12] = [
    "45.155.205.233",
    "185.220.101.47",
    "193.32.162.159",
    "91.92.241.10",
    "5.188.86.172",
    "141.98.10.63",
    "80.94.95.115",
    "194.26.29.102",
    "103.251.167.20",
    "62.210.105.116",
    "198.98.51.189",
    "23.129.64.130",
];

/// A home with `scry.toml`: Criminal IP with `criminalip` settings (no section when `None`, so
/// a shell without the key runs), a chat channel on `receiver`, a firewall blocklist, and
/// `rules`.
fn configure(home: &Path, receiver: u16, criminalip: Option<&str>, rules: &str) {
    let criminalip = criminalip.map_or_else(String::new, |settings| {
        // Quick by default; `settings` may set these itself.
        let mut section = format!("[sources.criminalip]\nretry_base_ms = 10\n{settings}\n");
        for (key, value) in [("max_requests", "50"), ("retries", "1")] {
            if !settings.contains(key) {
                section.push_str(&format!("{key} = {value}\n"));
            }
        }
        section
    });
    let text = format!(
        r#"
{criminalip}

[worker]
# Everything stored is due for a refresh by the next command.
refresh_after_hours = 0.000001

[automation.channels.soc]
url = "http://127.0.0.1:{receiver}/hook/soc"
template = "slack"

[automation.blocklists.firewall]
days = 7
min_priority = 70

{rules}
"#
    );
    std::fs::write(home.join("scry.toml"), text).expect("write config");
}

const BLOCK_HIGH: &str = r#"
[[rules]]
name = "block-high"
on = ["enriched", "updated"]
when = 'indicator.priority >= 70'
actions = [{ do = "block", list = "firewall" }, { do = "notify", channel = "soc" }]
"#;

/// `scry ARGS` in `home` against `sandbox` (no key when `sandbox` is `None`).
fn scry_with(
    home: &Path,
    sandbox: Option<&Sandbox>,
    args: &[&str],
    stdin: &[u8],
) -> std::process::Output {
    let mut command = scry(home);
    if let Some(sandbox) = sandbox {
        command
            .env("CRIMINALIP_API_KEY", KEY)
            .env("CRIMINALIP_BASE_URL", sandbox.url());
    }
    command.args(args);
    run(command, stdin)
}

fn store_url(home: &Path) -> String {
    format!("sqlite://{}", home.join("scry.db").display())
}

/// `scry show VALUE --format json`.
fn shown(home: &Path, value: &str) -> Value {
    let store = store_url(home);
    let output = run_args(
        home,
        &["--store", &store, "show", value, "--format", "json"],
        b"",
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("JSON")
}

/// The firewall blocklist, sorted.
fn blocklist(home: &Path) -> Vec<String> {
    let store = store_url(home);
    let output = run_args(
        home,
        &[
            "--store", &store, "export", "--format", "edl", "--list", "firewall",
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let mut listed: Vec<String> = text(&output.stdout).lines().map(str::to_owned).collect();
    listed.sort();
    listed
}

fn history(home: &Path, args: &[&str]) -> Vec<Value> {
    let store = store_url(home);
    let mut all = vec![
        "--store",
        store.as_str(),
        "history",
        "--format",
        "jsonl",
        "--limit",
        "10000",
    ];
    all.extend_from_slice(args);
    jsonl(&run_args(home, &all, b"").stdout)
}

fn chat(receiver: &Loopback<Received>) -> Vec<String> {
    receiver
        .log()
        .iter()
        .filter(|r| r.path == "/hook/soc")
        .map(|r| r.body["text"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// What an analyst sees of an indicator's verdict: priority, severity, tags, CVEs, report link.
fn verdict(shown: &Value) -> (Value, Value, Value, Vec<String>, Value) {
    let cves = shown["neighbours"]
        .as_array()
        .map(|n| {
            n.iter()
                .filter(|f| f["facet"] == "cve")
                .map(|f| f["value"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default();
    (
        shown["priority"].clone(),
        shown["severity"].clone(),
        shown["tags"].clone(),
        cves,
        shown["sources"]["criminalip"]["report_url"].clone(),
    )
}

#[test]
fn what_scry_knew_survives_a_spent_budget_an_outage_and_a_missing_key() {
    let rt = runtime();
    let sandbox = start_sandbox(&rt, SandboxConfig::default());
    let receiver = http_receiver();
    let home = tempfile::tempdir().expect("tempdir");
    let home = home.path();
    configure(home, receiver.port, Some(""), BLOCK_HIGH);
    let store = store_url(home);
    let input = home.join("ips.txt");
    std::fs::write(&input, ADDRESSES.join("\n")).expect("write input");
    let input = input.to_str().expect("utf-8");

    let first = scry_with(
        home,
        Some(&sandbox),
        &[
            "--store",
            &store,
            "enrich",
            "--format",
            "json",
            "--no-progress",
            input,
        ],
        b"",
    );
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let records: Vec<Value> = serde_json::from_slice(&first.stdout).expect("JSON");
    let mut high: Vec<String> = records
        .iter()
        .filter(|r| r["priority"].as_u64().unwrap_or(0) >= 70)
        .map(|r| r["indicator"].as_str().expect("indicator").to_owned())
        .collect();
    high.sort();
    assert!(!high.is_empty(), "some addresses score high: {records:#?}");
    assert_eq!(blocklist(home), high);
    assert_eq!(chat(&receiver).len(), high.len());
    let before: Vec<_> = high.iter().map(|ip| verdict(&shown(home, ip))).collect();
    assert!(
        before.iter().any(|(_, _, tags, cves, _)| {
            !cves.is_empty() || tags.as_array().is_some_and(|t| !t.is_empty())
        }),
        "the high-priority verdicts carry tags or CVEs to lose: {before:#?}"
    );
    let paid = |sandbox: &Sandbox| {
        sandbox
            .log()
            .entries()
            .iter()
            .filter(|e| e.credits > 0)
            .count()
    };
    let paid_first = paid(&sandbox);

    let check = |step: &str| {
        for (ip, was) in high.iter().zip(&before) {
            let now = shown(home, ip);
            assert_eq!(
                &verdict(&now),
                was,
                "{step}: {ip} kept its verdict: {now:#}"
            );
            assert!(
                now["sources"]["criminalip"]["stale"]["because"].is_string(),
                "{step}: the kept answer is marked stale with the reason: {now:#}"
            );
        }
        assert_eq!(blocklist(home), high, "{step}: nothing was unblocked");
        assert_eq!(
            chat(&receiver).len(),
            high.len(),
            "{step}: nothing was sent again"
        );
    };

    // 1. Scheduled refreshes with the day's credits spent: every refresh is skipped for budget.
    let spent = history(home, &["--kind", "call"])
        .iter()
        .map(|e| e["credits"].as_u64().unwrap_or(0))
        .sum::<u64>();
    configure(
        home,
        receiver.port,
        Some(&format!("daily_credits = {spent}")),
        BLOCK_HIGH,
    );
    let refresh = scry_with(
        home,
        Some(&sandbox),
        &["--store", &store, "jobs", "run"],
        b"",
    );
    assert_eq!(refresh.status.code(), Some(0), "{}", text(&refresh.stderr));
    assert!(
        text(&refresh.stderr).contains(&format!(
            "{} queued for a scheduled refresh",
            ADDRESSES.len()
        )),
        "{}",
        text(&refresh.stderr)
    );
    assert_eq!(paid(&sandbox), paid_first, "no call past the budget");
    check("refresh with the budget spent");
    let kept = history(home, &["--kind", "kept"]);
    for ip in &high {
        assert!(
            kept.iter().any(|e| e["indicator"] == ip.as_str()
                && e["outcome"] == "budget"
                && e["origin"] == "source:criminalip"),
            "the history says the refresh was skipped for budget and the answer kept: {kept:#?}"
        );
    }

    // 2. A vendor outage: every call fails, `enrich --force` included.
    configure(home, receiver.port, Some(""), BLOCK_HIGH);
    let down = start_sandbox(
        &rt,
        SandboxConfig {
            faults: Faults {
                server_error: 1.0,
                ..Faults::default()
            },
            ..SandboxConfig::default()
        },
    );
    let outage = scry_with(
        home,
        Some(&down),
        &[
            "--store",
            &store,
            "enrich",
            "--force",
            "--format",
            "json",
            "--no-progress",
            input,
        ],
        b"",
    );
    assert_ne!(outage.status.code(), Some(2), "{}", text(&outage.stderr));
    check("enrich --force during an outage");
    let outage_refresh = scry_with(home, Some(&down), &["--store", &store, "jobs", "run"], b"");
    assert_ne!(
        outage_refresh.status.code(),
        Some(2),
        "{}",
        text(&outage_refresh.stderr)
    );
    check("scheduled refresh during an outage");

    // 3. A shell without the key: plain `enrich` and `import`.
    configure(home, receiver.port, None, BLOCK_HIGH);
    for command in ["enrich", "import"] {
        let keyless = scry_with(home, None, &["--store", &store, command, input], b"");
        assert_eq!(keyless.status.code(), Some(0), "{}", text(&keyless.stderr));
        check(&format!("{command} without a key"));
    }

    // 4. The vendor answers again: fresh answers replace the kept ones.
    configure(home, receiver.port, Some(""), BLOCK_HIGH);
    let fresh = scry_with(
        home,
        Some(&sandbox),
        &[
            "--store",
            &store,
            "enrich",
            "--force",
            "--no-progress",
            input,
        ],
        b"",
    );
    assert_eq!(fresh.status.code(), Some(0), "{}", text(&fresh.stderr));
    for ip in &high {
        let now = shown(home, ip);
        assert!(now["sources"]["criminalip"]["stale"].is_null(), "{now:#}");
    }
    assert_eq!(blocklist(home), high);
    assert_eq!(
        chat(&receiver).len(),
        high.len(),
        "an unchanged verdict alerts nobody"
    );
    rt.block_on(down.stop());
    rt.block_on(sandbox.stop());
}

#[test]
fn a_cidr_block_keeps_what_the_local_sources_found_when_criminal_ip_is_configured() {
    let rt = runtime();
    let sandbox = start_sandbox(&rt, SandboxConfig::default());
    let home = tempfile::tempdir().expect("tempdir");
    let output = scry_with(
        home.path(),
        Some(&sandbox),
        &["enrich", "--no-store", "--format", "json", "-"],
        b"45.155.205.0/24\n",
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let records: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON");
    let block = &records[0];
    assert_eq!(block["status"], "enriched", "{block:#}");
    assert!(block["skip_reason"].is_null(), "{block:#}");
    assert!(block["sources"]["geo"]["data"]["asn"].is_u64(), "{block:#}");
    assert!(block["sources"]["geo"]["data"]["country"].is_string());
    assert!(
        sandbox
            .log()
            .entries()
            .iter()
            .all(|e| !e.query.contains("45.155.205.0"))
    );
    rt.block_on(sandbox.stop());
}

const NOTIFY_HIGH: &str = r#"
[[rules]]
name = "notify-high"
on = ["enriched", "updated", "schedule", "manual", "ingested"]
when = 'indicator.priority >= 70'
actions = [{ do = "notify", channel = "soc" }]
"#;

/// `--no-store` priorities of [`ADDRESSES`] as the sandbox with `seed` reports them, highest
/// first.
fn priorities(rt: &tokio::runtime::Runtime, home: &Path, seed: u64) -> Vec<(String, u64)> {
    let sandbox = start_sandbox(
        rt,
        SandboxConfig {
            seed,
            ..SandboxConfig::default()
        },
    );
    let output = scry_with(
        home,
        Some(&sandbox),
        &["enrich", "--no-store", "--format", "json", "-"],
        ADDRESSES.join("\n").as_bytes(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    rt.block_on(sandbox.stop());
    let records: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON");
    records
        .iter()
        .map(|r| {
            (
                r["indicator"].as_str().expect("indicator").to_owned(),
                r["priority"].as_u64().expect("priority"),
            )
        })
        .collect()
}

#[test]
fn refreshes_of_an_unchanged_indicator_alert_nobody_and_a_real_change_alerts_once() {
    let rt = runtime();
    let receiver = http_receiver();
    let home = tempfile::tempdir().expect("tempdir");
    let home = home.path();
    configure(home, receiver.port, Some(""), NOTIFY_HIGH);
    // An address the sandbox scores below 70 under seed 0 and at 70 or more under another seed:
    // its verdict really changes between the two.
    let low = priorities(&rt, home, 0);
    let (seed, ip) = (1..=12)
        .find_map(|seed| {
            let other = priorities(&rt, home, seed);
            low.iter()
                .find(|(ip, a)| *a < 70 && other.iter().any(|(same, b)| same == ip && *b >= 70))
                .map(|(ip, _)| (seed, ip.clone()))
        })
        .expect("some seed raises some address to 70 or more");
    let before = start_sandbox(&rt, SandboxConfig::default());
    let after = start_sandbox(
        &rt,
        SandboxConfig {
            seed,
            ..SandboxConfig::default()
        },
    );
    let store = store_url(home);
    let enrich = |sandbox: &Sandbox, force: bool| {
        let mut args = vec!["--store", store.as_str(), "enrich", "--no-progress"];
        if force {
            args.push("--force");
        }
        args.push("-");
        let output = scry_with(home, Some(sandbox), &args, ip.as_bytes());
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    };
    let refresh = |sandbox: &Sandbox| {
        let output = scry_with(
            home,
            Some(sandbox),
            &["--store", &store, "jobs", "run"],
            b"",
        );
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        assert!(text(&output.stderr).contains("1 queued for a scheduled refresh"));
    };

    enrich(&before, false);
    assert_eq!(chat(&receiver).len(), 0, "below 70: nobody is told");
    enrich(&before, true);
    refresh(&before);
    assert_eq!(chat(&receiver).len(), 0);

    // The verdict rises past 70: exactly one message, whichever path saw it first.
    refresh(&after);
    assert_eq!(
        chat(&receiver).len(),
        1,
        "{:#?}",
        (history(home, &[]), shown(home, &ip))
    );
    assert!(chat(&receiver)[0].contains(ip.as_str()));
    // Unchanged from here on: refreshes, forced enrichments, and enrichments from the cache.
    refresh(&after);
    enrich(&after, true);
    enrich(&after, false);
    refresh(&after);
    assert_eq!(chat(&receiver).len(), 1, "{:#?}", chat(&receiver));
    // The rule listens to five triggers; it matched once, and the history says so once.
    let matched: Vec<Value> = history(home, &["--kind", "rule"])
        .into_iter()
        .filter(|e| e["outcome"] == "matched")
        .collect();
    assert_eq!(matched.len(), 1, "{matched:#?}");
    rt.block_on(before.stop());
    rt.block_on(after.stop());
}

const NOTIFY_NEW: &str = r#"
[[rules]]
name = "notify-new"
on = ["created"]
actions = [{ do = "notify", channel = "soc" }, { do = "block", list = "firewall" }]
"#;

#[test]
fn a_dry_run_leaves_nothing_that_changes_the_real_run() {
    let rt = runtime();
    let sandbox = start_sandbox(&rt, SandboxConfig::default());
    let receiver = http_receiver();
    let home = tempfile::tempdir().expect("tempdir");
    let home = home.path();
    configure(home, receiver.port, Some(""), NOTIFY_NEW);
    let store = store_url(home);
    let input = ADDRESSES[..4].join("\n");
    let enrich = |extra: &[&str]| {
        let mut args = vec!["--store", store.as_str(), "enrich", "--no-progress"];
        args.extend_from_slice(extra);
        args.push("-");
        let output = scry_with(home, Some(&sandbox), &args, input.as_bytes());
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        text(&output.stderr)
    };

    let rehearsal = enrich(&["--dry-run"]);
    assert!(
        rehearsal.contains("(dry run: would be, nothing saved): 4 new"),
        "{rehearsal}"
    );
    assert!(
        rehearsal.contains("rules (dry run): 4 would act"),
        "{rehearsal}"
    );
    assert_eq!(chat(&receiver).len(), 0);
    assert!(blocklist(home).is_empty());
    let count = run_args(home, &["--store", &store, "db", "migrate"], b"");
    assert!(
        text(&count.stdout).contains("; 0 indicators"),
        "{}",
        text(&count.stdout)
    );
    let rehearsed: Vec<Value> = history(home, &["--kind", "rule"]);
    assert_eq!(rehearsed.len(), 4, "{rehearsed:#?}");
    assert!(rehearsed.iter().all(|e| e["outcome"] == "dry-run"));
    let paid = sandbox
        .log()
        .entries()
        .iter()
        .filter(|e| e.credits > 0)
        .count();
    assert!(paid > 0);

    let real = enrich(&[]);
    assert!(real.contains(": 4 new, 0 changed"), "{real}");
    assert_eq!(chat(&receiver).len(), 4, "created fires once per indicator");
    assert_eq!(blocklist(home).len(), 4);
    assert_eq!(
        sandbox
            .log()
            .entries()
            .iter()
            .filter(|e| e.credits > 0)
            .count(),
        paid,
        "the rehearsal's paid answers are reused, not bought again"
    );
    enrich(&[]);
    assert_eq!(chat(&receiver).len(), 4, "and never again");
    rt.block_on(sandbox.stop());
}

#[test]
fn a_rules_enrich_is_paid_once_and_every_figure_counts_it() {
    let rt = runtime();
    let sandbox = start_sandbox(&rt, SandboxConfig::default());
    let receiver = http_receiver();
    let home = tempfile::tempdir().expect("tempdir");
    let home = home.path();
    configure(
        home,
        receiver.port,
        Some("daily_credits = 1000"),
        r#"
[[rules]]
name = "ask-again"
on = ["created"]
when = 'indicator.type == "ipv4-addr"'
actions = [{ do = "enrich" }]
"#,
    );
    let store = store_url(home);
    let input = ADDRESSES[..5].join("\n");
    let output = scry_with(
        home,
        Some(&sandbox),
        &["--store", &store, "enrich", "--no-progress", "-"],
        input.as_bytes(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("5 matched, 5 actions queued; actions: 5 done"),
        "{}",
        text(&output.stderr)
    );

    let entries = sandbox.log().entries();
    let vendor_credits: u64 = entries.iter().map(|e| u64::from(e.credits)).sum();
    let vendor_paid = entries.iter().filter(|e| e.credits > 0).count() as u64;
    let calls = history(home, &["--kind", "call"]);
    let history_credits: u64 = calls
        .iter()
        .map(|e| e["credits"].as_u64().unwrap_or(0))
        .sum();
    let paid_calls = calls.iter().filter(|e| e["outcome"] == "ok").count() as u64;
    assert!(
        vendor_paid >= 10,
        "the run and the rule each paid per address: {entries:#?}"
    );
    assert_eq!(history_credits, vendor_credits, "{calls:#?}");
    assert_eq!(paid_calls, 10, "one call event per paid lookup: {calls:#?}");
    let status = run_args(
        home,
        &["--store", &store, "sources", "status", "--format", "json"],
        b"",
    );
    let status: Value = serde_json::from_slice(&status.stdout).expect("JSON");
    let criminalip = status
        .as_array()
        .and_then(|s| s.iter().find(|s| s["source"] == "criminalip"))
        .expect("criminalip in sources status");
    assert_eq!(
        criminalip["today"]["credits"].as_u64(),
        Some(vendor_credits)
    );
    assert_eq!(criminalip["today"]["paid"].as_u64(), Some(paid_calls));
    rt.block_on(sandbox.stop());
}

/// A mail relay that accepts connections and never says a word; it keeps them open until
/// dropped (or two minutes pass).
struct SilentRelay {
    port: u16,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl SilentRelay {
    fn start() -> SilentRelay {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("address").port();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (count, halt) = (accepted.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(120);
            while !halt.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        count.fetch_add(1, Ordering::SeqCst);
                        held.push(stream);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        SilentRelay {
            port,
            accepted,
            stop,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for SilentRelay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

fn relay_rules(relay: u16, timeout_seconds: u32) -> String {
    format!(
        r#"
[automation.channels.mail]
url = "smtp://127.0.0.1:{relay}"
starttls = false
from = "scry <scry@soc.example.org>"
to = ["oncall@soc.example.org"]
timeout_seconds = {timeout_seconds}
max_attempts = 3

[[rules]]
name = "mail-all"
on = ["created"]
actions = [{{ do = "notify", channel = "mail" }}]

[[rules]]
name = "chat-all"
on = ["created"]
actions = [{{ do = "notify", channel = "soc" }}]
"#
    )
}

#[test]
fn a_silent_mail_relay_holds_up_neither_other_actions_nor_a_stopping_worker() {
    let rt = runtime();
    let sandbox = start_sandbox(&rt, SandboxConfig::default());
    let receiver = http_receiver();
    let relay = SilentRelay::start();
    let home = tempfile::tempdir().expect("tempdir");
    let home = home.path();
    let store = store_url(home);

    // A direct run: each mail attempt fails at its deadline and waits for a retry; every chat
    // message goes out.
    configure(home, receiver.port, Some(""), &relay_rules(relay.port, 1));
    let output = scry_with(
        home,
        Some(&sandbox),
        &["--store", &store, "enrich", "--no-progress", "-"],
        ADDRESSES[..3].join("\n").as_bytes(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(chat(&receiver).len(), 3);
    assert!(relay.accepted() >= 1, "the relay was reached");
    let mails: Vec<Value> = history(home, &["--rule", "mail-all"])
        .into_iter()
        .filter(|e| e["kind"] == "action")
        .collect();
    assert_eq!(mails.len(), 3, "{mails:#?}");
    for mail in &mails {
        assert_eq!(mail["outcome"], "retry", "{mail:#}");
        assert!(
            mail["detail"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("no complete answer within 1.0 s")),
            "{mail:#}"
        );
    }

    // A worker stuck on the relay (a long deadline) stops within 10 s of SIGTERM, and leaves the
    // mail jobs queued for later.
    configure(home, receiver.port, Some(""), &relay_rules(relay.port, 600));
    let queued = scry_with(
        home,
        None,
        &["--store", &store, "ingest", "-"],
        ADDRESSES[3..6].join("\n").as_bytes(),
    );
    assert_eq!(queued.status.code(), Some(0), "{}", text(&queued.stderr));
    let mut worker = scry(home);
    worker
        .env("CRIMINALIP_API_KEY", KEY)
        .env("CRIMINALIP_BASE_URL", sandbox.url())
        .args(["--store", &store, "worker"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child: std::process::Child = worker.spawn().expect("worker starts");
    let reached = relay.accepted();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (relay.accepted() <= reached || chat(&receiver).len() < 6) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        chat(&receiver).len(),
        6,
        "the chat messages went out meanwhile"
    );
    assert!(
        relay.accepted() > reached,
        "the worker is talking to the silent relay"
    );
    let pid = child.id().to_string();
    let signalled = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(kill.success());
    let mut exit = None;
    while exit.is_none() && signalled.elapsed() < Duration::from_secs(60) {
        exit = child.try_wait().expect("wait");
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = signalled.elapsed();
    if exit.is_none() {
        let _ = child.kill();
    }
    let mut stderr = String::new();
    if let Some(pipe) = child.stderr.take() {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            stderr.push_str(&line);
            stderr.push('\n');
        }
    }
    let _ = child.wait();
    assert!(exit.is_some_and(|s| s.success()), "{stderr}");
    eprintln!("the worker stopped {took:?} after SIGTERM");
    assert!(
        took < Duration::from_secs(10),
        "stopped after {took:?}: {stderr}"
    );
    // The mail jobs it let go are queued still, none failed for it.
    let status = run_args(home, &["--store", &store, "jobs", "status"], b"");
    let status = text(&status.stdout);
    let count = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {status}"))
    };
    assert!(count("ready") + count("waiting") >= 3, "{status}");
    assert_eq!(count("failed"), 0, "{status}");
    rt.block_on(sandbox.stop());
}

/// The seed's "only enrich external IPs, or those with a certain threat level, to avoid wasting
/// API calls": a paid source scoped to types and to a condition over what the local sources
/// found is not asked otherwise; its "no" is a skip with reason `condition`, in the history, and
/// what it said before is kept.
#[test]
fn types_and_enrich_when_keep_paid_calls_to_what_matters() {
    let rt = runtime();
    let sandbox = start_sandbox(&rt, SandboxConfig::default());
    let receiver = http_receiver();
    let home = tempfile::tempdir().expect("tempdir");
    let home = home.path();
    let store = store_url(home);
    // Offline AS and country data: 185.220.101.47 is in DE, 45.155.205.233 and 194.26.29.102 in
    // RU, 193.32.162.159 in NL.
    let input = "185.220.101.47\n45.155.205.233\n194.26.29.102\n193.32.162.159\npaypal-account-verify.info\n";
    let targeted = |when: &str| {
        configure(
            home,
            receiver.port,
            Some(&format!("types = [\"ipv4-addr\"]\nenrich_when = '{when}'")),
            "",
        );
    };
    targeted(r#"indicator.country in ["RU", "NL"] && indicator.priority < 50"#);
    let output = scry_with(
        home,
        Some(&sandbox),
        &[
            "--store",
            &store,
            "enrich",
            "--format",
            "json",
            "--no-progress",
            "-",
        ],
        input.as_bytes(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let asked = super::asked(&sandbox);
    for sent in ["45.155.205.233", "194.26.29.102", "193.32.162.159"] {
        assert!(asked.iter().any(|a| a.contains(sent)), "{sent}: {asked:#?}");
    }
    for kept_home in ["185.220.101.47", "paypal-account-verify"] {
        assert!(
            !asked.iter().any(|a| a.contains(kept_home)),
            "{kept_home} reached the sandbox: {asked:#?}"
        );
    }
    let records: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON");
    let find = |value: &str| {
        records
            .iter()
            .find(|r| r["indicator"] == value)
            .unwrap_or_else(|| panic!("{value} in {records:#?}"))
    };
    for home_only in ["185.220.101.47", "paypal-account-verify.info"] {
        let record = find(home_only);
        assert_eq!(record["status"], "skipped", "{record:#}");
        assert_eq!(record["skip_reason"], "condition", "{record:#}");
        assert_eq!(
            record["sources"]["criminalip"]["skip_reason"], "condition",
            "{record:#}"
        );
    }
    let skips = history(home, &["--kind", "skip"]);
    assert_eq!(
        skips.iter().filter(|e| e["outcome"] == "condition").count(),
        2,
        "{skips:#?}"
    );

    // Narrowed later: the answers already bought are kept, marked stale, not erased.
    let lookups = |sandbox: &Sandbox| {
        super::asked(sandbox)
            .into_iter()
            .filter(|a| !a.starts_with("/v1/user/me"))
            .count()
    };
    let paid = lookups(&sandbox);
    targeted(r#"indicator.country == "DE""#);
    let again = scry_with(
        home,
        Some(&sandbox),
        &["--store", &store, "enrich", "--force", "--no-progress", "-"],
        b"45.155.205.233\n",
    );
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert_eq!(lookups(&sandbox), paid, "nothing asked but the key check");
    let shown = shown(home, "45.155.205.233");
    assert_eq!(
        shown["sources"]["criminalip"]["stale"]["because"], "skipped: condition",
        "{shown:#}"
    );

    // A condition that does not compile is a configuration error with its place.
    targeted("indicator.country ==");
    let broken = scry_with(
        home,
        Some(&sandbox),
        &["--store", &store, "enrich", "-"],
        b"8.8.4.4\n",
    );
    assert_eq!(broken.status.code(), Some(2), "{}", text(&broken.stderr));
    assert!(
        text(&broken.stderr).contains("enrich_when: line 1"),
        "{}",
        text(&broken.stderr)
    );
    rt.block_on(sandbox.stop());
}

/// `blocked-by-scry` is state, not a note: `block` sets it and it goes with the last blocklist
/// entry (here: the address is allowlisted, which unblocks it).
#[test]
fn the_blocked_label_follows_the_blocklist() {
    let rt = runtime();
    let sandbox = start_sandbox(&rt, SandboxConfig::default());
    let receiver = http_receiver();
    let home = tempfile::tempdir().expect("tempdir");
    let home = home.path();
    let store = store_url(home);
    configure(home, receiver.port, Some(""), BLOCK_HIGH);
    let first = scry_with(
        home,
        Some(&sandbox),
        &[
            "--store",
            &store,
            "enrich",
            "--format",
            "json",
            "--no-progress",
            "-",
        ],
        ADDRESSES.join("\n").as_bytes(),
    );
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let blocked = blocklist(home);
    let ip = blocked.first().expect("some address is blocked").clone();
    let labels = |home: &Path| shown(home, &ip)["workflow"]["labels"].clone();
    assert_eq!(labels(home), serde_json::json!(["blocked-by-scry"]));

    let config = std::fs::read_to_string(home.join("scry.toml")).expect("config");
    std::fs::write(
        home.join("scry.toml"),
        format!("[egress]\nallowlist = [\"{ip}\"]\n{config}"),
    )
    .expect("write config");
    let again = scry_with(
        home,
        Some(&sandbox),
        &["--store", &store, "enrich", "--no-progress", "-"],
        ip.as_bytes(),
    );
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert!(!blocklist(home).contains(&ip));
    assert_eq!(
        labels(home),
        serde_json::json!([]),
        "{:#}",
        shown(home, &ip)
    );
    rt.block_on(sandbox.stop());
}

/// The operations figures count what went over the wire: every HTTP request, its retries and its
/// failures by kind (a retried 5xx is an error, not 0 %), and the vendor's latency per request —
/// not an indicator's wall time, queue wait included.
#[test]
fn operations_figures_count_requests_retries_errors_and_vendor_latency() {
    let rt = runtime();
    let sandbox = start_sandbox(
        &rt,
        SandboxConfig {
            faults: Faults {
                server_error: 0.3,
                ..Faults::default()
            },
            ..SandboxConfig::default()
        },
    );
    let receiver = http_receiver();
    let home = tempfile::tempdir().expect("tempdir");
    let home = home.path();
    let store = store_url(home);
    // One request at a time, five a second: the last indicator waits about two seconds for its
    // turn, which is queue time, not the vendor's.
    configure(
        home,
        receiver.port,
        Some("max_requests = 1\nper_seconds = 0.2\nretries = 4\n"),
        "",
    );
    let output = scry_with(
        home,
        Some(&sandbox),
        &[
            "--store",
            &store,
            "enrich",
            "--no-progress",
            "--concurrency",
            "12",
            "-",
        ],
        ADDRESSES.join("\n").as_bytes(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let log = sandbox.log().entries();
    let server_errors = log.iter().filter(|e| e.status == 500).count() as u64;
    assert!(
        server_errors > 0,
        "the sandbox failed some requests: {log:#?}"
    );

    let status = run_args(
        home,
        &["--store", &store, "sources", "status", "--format", "json"],
        b"",
    );
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stderr));
    let status: Value = serde_json::from_slice(&status.stdout).expect("JSON");
    let criminalip = status
        .as_array()
        .and_then(|s| s.iter().find(|s| s["source"] == "criminalip"))
        .expect("criminalip in sources status");
    let today = &criminalip["today"];
    assert_eq!(
        today["requests"].as_u64(),
        Some(log.len() as u64),
        "{today:#}"
    );
    assert_eq!(
        today["errors"]["5xx"].as_u64(),
        Some(server_errors),
        "{today:#}"
    );
    assert_eq!(
        today["retries"].as_u64(),
        Some(server_errors),
        "every 5xx was retried: {today:#}"
    );
    let percent = today["error_percent"].as_f64().expect("error percent");
    let expected = server_errors as f64 * 100.0 / log.len() as f64;
    assert!((percent - expected).abs() < 0.01, "{percent} vs {expected}");
    let p95 = criminalip["latency_ms"]["p95"].as_i64().expect("latency");
    assert!(
        p95 < 1_000,
        "the vendor answers on loopback at once; {p95} ms would be queue time"
    );
    let text_status = run_args(home, &["--store", &store, "sources", "status"], b"");
    let shown = text(&text_status.stdout);
    assert!(
        shown.contains(&format!(
            "today's failed requests by kind: 5xx {server_errors}"
        )),
        "{shown}"
    );
    rt.block_on(sandbox.stop());
}
