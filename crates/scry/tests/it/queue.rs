//! The durable pipeline: indicators queued by `scry ingest` and enriched by `scry jobs run`, with
//! the worker killed (SIGKILL) in the middle of the run and started again.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use scry_sandbox::{Sandbox, SandboxConfig};
use serde_json::Value;

use super::{run, runtime, scry, start_sandbox, text};

const KEY: &str = "ck-live-5e1c9a0b7d24";

/// Distinct public addresses, deterministic.
fn addresses(n: usize) -> Vec<String> {
    let first = [45, 185, 91, 193, 80];
    (0..n)
        .map(|i| {
            format!(
                "{}.{}.{}.{}",
                first[i % 5],
                10 + i / 50,
                (i * 7) % 250 + 1,
                i % 250 + 1
            )
        })
        .collect()
}

/// The paid IP report calls of the sandbox's log, in arrival order, as (address, arrival in Unix
/// ms).
fn paid_reports(sandbox: &Sandbox) -> Vec<(String, u64)> {
    sandbox
        .log()
        .entries()
        .into_iter()
        .filter(|e| e.path == "/v1/asset/ip/report" && e.credits > 0)
        .filter_map(|e| {
            e.query
                .split('&')
                .find_map(|pair| pair.strip_prefix("ip="))
                .map(|ip| (ip.to_owned(), e.unix_ms))
        })
        .collect()
}

/// A home with `scry.toml`, an input file of addresses and a store, next to a sandbox.
struct Setup {
    _runtime: tokio::runtime::Runtime,
    sandbox: Sandbox,
    home: tempfile::TempDir,
    store: String,
    ips: Vec<String>,
    input: String,
}

impl Setup {
    fn new(config: &str, sandbox: SandboxConfig, addresses_in_input: usize) -> Setup {
        let runtime = runtime();
        let sandbox = start_sandbox(&runtime, sandbox);
        let home = tempfile::tempdir().expect("tempdir");
        std::fs::write(home.path().join("scry.toml"), config).expect("write config");
        let ips = addresses(addresses_in_input);
        let input = home.path().join("batch.txt");
        std::fs::write(&input, ips.join("\n")).expect("write input");
        Setup {
            store: format!("sqlite://{}", home.path().join("scry.db").display()),
            input: input.to_str().expect("utf-8").to_owned(),
            _runtime: runtime,
            sandbox,
            home,
            ips,
        }
    }

    /// `scry --store STORE ARGS` with the sandbox's key and address.
    fn scry(&self, args: &[&str]) -> Command {
        let mut command = scry(self.home.path());
        command
            .env("CRIMINALIP_API_KEY", KEY)
            .env("CRIMINALIP_BASE_URL", self.sandbox.url())
            .args(["--store", &self.store])
            .args(args);
        command
    }

    /// Queues the input; asserts it was all accepted.
    fn ingest(&self) {
        let ingest = run(self.scry(&["ingest", &self.input]), b"");
        assert_eq!(ingest.status.code(), Some(0), "{}", text(&ingest.stderr));
        assert!(
            text(&ingest.stderr).contains(&format!("{} queued for enrichment", self.ips.len())),
            "{}",
            text(&ingest.stderr)
        );
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[test]
fn a_worker_killed_mid_run_loses_nothing_and_buys_nothing_twice() {
    let concurrency = 4;
    let setup = Setup::new(
        &format!(
            "[sources.criminalip]\nmax_requests = 25\nconcurrency = {concurrency}\nretry_base_ms = 10\n\n\
             [worker]\nlease_seconds = 3\n"
        ),
        SandboxConfig {
            latency_median: Duration::from_millis(40),
            latency_p99: Duration::from_millis(200),
            ..SandboxConfig::default()
        },
        300,
    );
    let (sandbox, ips) = (&setup.sandbox, &setup.ips);
    let scry_with_key = |args: &[&str]| setup.scry(args);
    setup.ingest();
    assert!(paid_reports(sandbox).is_empty(), "queuing asks no source");

    // Start a worker and kill it once a good part of the batch is paid for.
    let mut worker = scry_with_key(&["jobs", "run"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the worker starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while paid_reports(sandbox).len() < 90 && Instant::now() < deadline {
        assert!(
            worker.try_wait().expect("poll the worker").is_none(),
            "the worker finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed_at = unix_ms();
    worker.kill().expect("kill the worker");
    worker.wait().expect("reap the worker");
    // Requests the sandbox was still answering finish (the longest latency is 600 ms).
    std::thread::sleep(Duration::from_millis(1_000));
    let at_kill = paid_reports(sandbox);
    assert!(
        at_kill.len() >= 90 && at_kill.len() < ips.len(),
        "killed mid-run: {} of {} paid",
        at_kill.len(),
        ips.len()
    );
    let status = run(scry_with_key(&["jobs", "status"]), b"");
    let before_restart = text(&status.stdout);
    assert!(
        !before_restart.contains("done 300"),
        "the kill left work undone: {before_restart}"
    );

    // The dead worker's leases run out; a new worker finishes the run.
    std::thread::sleep(Duration::from_millis(3_200));
    let again = run(scry_with_key(&["jobs", "run"]), b"");
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    let status = run(scry_with_key(&["jobs", "status"]), b"");
    assert_eq!(
        text(&status.stdout),
        "ready 0\nwaiting 0\ndone 300\nfailed 0\n",
        "every job done once, none failed"
    );

    // The store holds every indicator once, enriched.
    let export = run(
        scry_with_key(&["export", "--format", "jsonl", "--min-priority", "0"]),
        b"",
    );
    assert_eq!(export.status.code(), Some(0), "{}", text(&export.stderr));
    let mut stored: BTreeMap<String, Value> = BTreeMap::new();
    for line in text(&export.stdout).lines() {
        let record: Value = serde_json::from_str(line).expect("JSON line");
        let value = record["indicator"].as_str().expect("indicator").to_owned();
        assert!(
            stored.insert(value.clone(), record).is_none(),
            "{value} stored twice"
        );
    }
    assert_eq!(stored.len(), ips.len());
    for ip in ips {
        let record = stored.get(ip).unwrap_or_else(|| panic!("{ip} was lost"));
        assert_eq!(record["status"], "enriched", "{record}");
    }

    // The sandbox was paid once per address. The only exception possible is an answer that was
    // on the wire when the worker died (paid, never received): its call arrived at most the
    // longest latency before the kill, and at most `concurrency` were in flight.
    let all = paid_reports(sandbox);
    let mut calls: BTreeMap<&str, usize> = BTreeMap::new();
    for (ip, _) in &all {
        *calls.entry(ip.as_str()).or_default() += 1;
    }
    for ip in ips {
        assert!(calls.contains_key(ip.as_str()), "{ip} was never asked");
    }
    let in_flight_at_kill: Vec<&str> = at_kill
        .iter()
        .filter(|(_, arrived)| *arrived + 1_000 >= killed_at)
        .map(|(ip, _)| ip.as_str())
        .collect();
    let twice: Vec<(&str, usize)> = calls
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(ip, n)| (*ip, *n))
        .collect();
    assert!(twice.len() <= concurrency, "{twice:?}");
    for (ip, n) in &twice {
        assert!(
            *n == 2 && in_flight_at_kill.contains(ip),
            "{ip} was paid for {n} times, and not because its answer was on the wire at the kill: {all:?}"
        );
    }
    eprintln!(
        "crash test: {} paid before the kill, {} after; {} paid twice (answer on the wire at the kill); \
         the restarted worker: {}",
        at_kill.len(),
        all.len() - at_kill.len(),
        twice.len(),
        text(&again.stderr).trim()
    );
}

#[test]
fn scheduled_refreshes_re_enrich_what_is_old_and_raise_schedule_rules() {
    // A refresh interval of 0.36 s, so the test need not wait hours. A refresh that changes
    // nothing fires no rule by default; a cooldown of the same 0.36 s lets these two act again
    // on an unchanged state once per window.
    let setup = Setup::new(
        "[sources.criminalip]\nmax_requests = 50\ndaily_credits = 12\n\n\
         [worker]\nrefresh_after_hours = 0.0001\n\n\
         [[rules]]\nname = \"on-refresh\"\non = [\"schedule\"]\ncooldown_hours = 0.0001\n\
         actions = [{ do = \"tag\", tag = \"refreshed\" }]\n\n\
         [[rules]]\nname = \"on-manual\"\non = [\"manual\"]\ncooldown_hours = 0.0001\n\
         actions = [{ do = \"tag\", tag = \"asked-by-hand\" }]\n",
        SandboxConfig::default(),
        5,
    );
    let (sandbox, ips) = (&setup.sandbox, &setup.ips);
    let scry_with_key = |args: &[&str]| setup.scry(args);
    let history = |rule: &str| -> Vec<Value> {
        let output = run(
            scry_with_key(&["history", "--rule", rule, "--format", "jsonl"]),
            b"",
        );
        text(&output.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect()
    };

    setup.ingest();
    let first = run(scry_with_key(&["jobs", "run"]), b"");
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    assert_eq!(paid_reports(sandbox).len(), 5);
    assert!(
        history("on-refresh").is_empty(),
        "an ingest is not a refresh"
    );
    assert!(
        history("on-manual").is_empty(),
        "a queued ingest is not a manual run"
    );

    std::thread::sleep(Duration::from_millis(600));
    let second = run(scry_with_key(&["jobs", "run"]), b"");
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stderr));
    let stderr = text(&second.stderr);
    assert!(
        stderr.contains("5 queued for a scheduled refresh"),
        "{stderr}"
    );
    assert_eq!(
        paid_reports(sandbox).len(),
        10,
        "a refresh asks the source again, past the cache"
    );
    let matched: Vec<Value> = history("on-refresh")
        .into_iter()
        .filter(|e| e["kind"] == "rule")
        .collect();
    assert_eq!(matched.len(), 5, "{matched:#?}");
    assert!(matched.iter().all(|e| e["detail"]["trigger"] == "schedule"));
    let shown = run(scry_with_key(&["show", &ips[0], "--format", "json"]), b"");
    assert!(
        text(&shown.stdout).contains("refreshed"),
        "{}",
        text(&shown.stdout)
    );

    // A direct enrichment is a manual one.
    let direct = run(
        scry_with_key(&["enrich", "--no-progress", "--format", "json", "-"]),
        ips[1].as_bytes(),
    );
    assert_eq!(direct.status.code(), Some(0), "{}", text(&direct.stderr));
    let manual: Vec<Value> = history("on-manual")
        .into_iter()
        .filter(|e| e["kind"] == "rule")
        .collect();
    assert_eq!(manual.len(), 1, "{manual:#?}");
    assert_eq!(manual[0]["indicator"], ips[1].as_str());

    // The performance report, from the history: 10 paid calls, 1 answer reused.
    let status = run(
        scry_with_key(&["sources", "status", "--format", "json"]),
        b"",
    );
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stderr));
    let report: Value = serde_json::from_slice(&status.stdout).expect("JSON");
    let today = &report[0]["today"];
    assert_eq!(report[0]["source"], "criminalip", "{report:#}");
    assert_eq!(
        (
            &today["paid"],
            &today["cached"],
            &today["failed"],
            &today["credits"]
        ),
        (
            &Value::from(10),
            &Value::from(1),
            &Value::from(0),
            &Value::from(10)
        ),
        "{report:#}"
    );
    assert_eq!(today["credit_limit"], 12);
    assert!(
        report[0]["latency_ms"]["p50"].as_i64().is_some(),
        "{report:#}"
    );

    // A new process knows the 10 credits spent today: of 3 forced calls, 2 fit the budget.
    let forced = run(
        scry_with_key(&[
            "enrich",
            "--no-progress",
            "--force",
            "--format",
            "json",
            "-",
        ]),
        ips[2..5].join("\n").as_bytes(),
    );
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced.stderr));
    let records: Vec<Value> = serde_json::from_slice(&forced.stdout).expect("JSON");
    let mut statuses: Vec<String> = records
        .iter()
        .map(|r| match r["skip_reason"].as_str() {
            Some(reason) => format!("{} ({reason})", r["status"].as_str().unwrap_or("")),
            None => r["status"].as_str().unwrap_or("").to_owned(),
        })
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        ["enriched", "enriched", "skipped (budget)"],
        "{records:#?}"
    );
}
