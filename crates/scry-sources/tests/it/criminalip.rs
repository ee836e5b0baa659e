//! The Criminal IP client against the sandbox: limits, cache, budget, errors and retries, proven
//! from the server's side.

use std::net::SocketAddr;
use std::ops::Not;
use std::sync::Arc;
use std::time::Duration;

use scry_core::exposure::Exposure;
use scry_core::{EgressGate, Observable, Subject};
use scry_sandbox::{Faults, LogEntry, Sandbox, SandboxConfig};
use scry_sources::clock::{Clock, ManualClock};
use scry_sources::criminalip::client::RetryPolicy;
use scry_sources::criminalip::{IpCalls, ScanKind};
use scry_sources::guard::{BudgetEvent, BudgetLimits, Period};
use scry_sources::{
    CriminalIp, CriminalIpSettings, EnrichOptions, Finding, Secret, Source, SourceContext,
    SourceError,
};

const KEY: &str = "sandbox-key-3f9a1c";

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("valid address")
}

async fn sandbox(config: SandboxConfig) -> Sandbox {
    Sandbox::start(config, loopback())
        .await
        .expect("the sandbox starts")
}

fn settings(sandbox: &Sandbox) -> CriminalIpSettings {
    let mut s = CriminalIpSettings::new(Secret::new(KEY));
    s.base_url = sandbox.url();
    s.max_requests = 1000;
    s.concurrency = 8;
    s.timeout = Duration::from_secs(5);
    s.retry = RetryPolicy {
        retries: 3,
        base: Duration::from_millis(10),
        cap: Duration::from_millis(200),
    };
    s.scan_poll_interval = Duration::from_millis(50);
    s.scan_timeout = Duration::from_secs(10);
    s
}

/// Enriches every indicator at once, each in a task of its own; the outcomes in input order.
async fn enrich_all(
    source: &Arc<CriminalIp>,
    indicators: Vec<String>,
) -> Vec<Result<Finding, SourceError>> {
    let tasks: Vec<_> = indicators
        .into_iter()
        .map(|indicator| {
            let source = Arc::clone(source);
            tokio::spawn(async move { enrich(&source, &indicator).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("the task ran to completion"));
    }
    outcomes
}

async fn enrich(source: &CriminalIp, indicator: &str) -> Result<Finding, SourceError> {
    enrich_with(source, indicator, EnrichOptions::default()).await
}

async fn enrich_with(
    source: &CriminalIp,
    indicator: &str,
    options: EnrichOptions,
) -> Result<Finding, SourceError> {
    let observable = Observable::parse(indicator).expect("valid indicator");
    let gate = EgressGate::default();
    let cleared = gate
        .clear(
            Subject {
                observable: &observable,
                tlp: None,
                asn: None,
            },
            source.destination(),
        )
        .expect("public indicators pass the gate");
    source.enrich(cleared, options).await
}

fn requests<'a>(log: &'a [LogEntry], path: &str) -> Vec<&'a LogEntry> {
    log.iter().filter(|e| e.path == path).collect()
}

/// The most requests the log shows in any window of `window_ms` milliseconds.
fn busiest_window(log: &[LogEntry], window_ms: f64) -> usize {
    (0..log.len())
        .map(|i| {
            log[i..]
                .iter()
                .take_while(|e| e.at_ms - log[i].at_ms < window_ms)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// Public test addresses spread over many networks.
fn ips(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("45.{}.{}.{}", 10 + i % 200, (i * 7) % 256, 1 + i % 250))
        .collect()
}

#[tokio::test]
async fn never_more_than_the_configured_rate_in_any_second() {
    let sandbox = sandbox(SandboxConfig {
        rate_limit: Some((5, Duration::from_secs(1))),
        ..SandboxConfig::default()
    })
    .await;
    let mut s = settings(&sandbox);
    s.max_requests = 5;
    s.per = Duration::from_secs(1);
    let source = Arc::new(CriminalIp::new(s).expect("source"));
    for outcome in enrich_all(&source, ips(16)).await {
        outcome.expect("every IP is enriched");
    }
    let log = sandbox.log().entries();
    assert_eq!(log.len(), 16);
    assert_eq!(
        busiest_window(&log, 1000.0),
        5,
        "at most 5 requests in any second"
    );
    assert!(
        log.iter().all(|e| e.outcome == "ok"),
        "the sandbox never had to refuse: {log:?}"
    );
    let span = log.last().expect("entries").at_ms - log[0].at_ms;
    assert!(
        span >= 3000.0,
        "16 requests at 5/s need more than 3 s, took {span} ms"
    );
}

#[tokio::test]
async fn never_more_than_the_configured_concurrency() {
    let slow = SandboxConfig {
        latency_median: Duration::from_millis(60),
        latency_p99: Duration::from_millis(80),
        refuse_concurrent: true,
        ..SandboxConfig::default()
    };
    let sandbox = sandbox(slow).await;
    let mut s = settings(&sandbox);
    s.concurrency = 1;
    let source = Arc::new(CriminalIp::new(s).expect("source"));
    for outcome in enrich_all(&source, ips(8)).await {
        outcome.expect("enriched");
    }
    let log = sandbox.log().entries();
    assert_eq!(
        log.iter().map(|e| e.in_flight).max(),
        Some(1),
        "one request in flight at a time"
    );
    assert!(log.iter().all(|e| e.outcome == "ok"));

    let sandbox = sandbox_with_latency(60).await;
    let mut s = settings(&sandbox);
    s.concurrency = 3;
    let source = Arc::new(CriminalIp::new(s).expect("source"));
    for outcome in enrich_all(&source, ips(12)).await {
        outcome.expect("enriched");
    }
    let peak = sandbox.log().entries().iter().map(|e| e.in_flight).max();
    assert_eq!(peak, Some(3), "the cap is used and never exceeded");
}

async fn sandbox_with_latency(ms: u64) -> Sandbox {
    sandbox(SandboxConfig {
        latency_median: Duration::from_millis(ms),
        latency_p99: Duration::from_millis(ms + 20),
        ..SandboxConfig::default()
    })
    .await
}

#[tokio::test]
async fn a_refused_concurrent_call_is_retried() {
    let sandbox = sandbox(SandboxConfig {
        latency_median: Duration::from_millis(40),
        latency_p99: Duration::from_millis(60),
        refuse_concurrent: true,
        ..SandboxConfig::default()
    })
    .await;
    let mut s = settings(&sandbox);
    s.concurrency = 3;
    s.retry.retries = 10;
    let source = Arc::new(CriminalIp::new(s).expect("source"));
    for outcome in enrich_all(&source, ips(6)).await {
        outcome.expect("enriched despite refusals");
    }
    let log = sandbox.log().entries();
    assert!(
        log.iter().any(|e| e.outcome == "concurrent-refused"),
        "the sandbox refused some calls"
    );
    assert_eq!(log.iter().filter(|e| e.outcome == "ok").count(), 6);
    assert!(source.metrics().retries > 0);
}

#[tokio::test]
async fn cached_indicators_are_never_asked_again() {
    let sandbox = sandbox_with_latency(30).await;
    let source = Arc::new(CriminalIp::new(settings(&sandbox)).expect("source"));
    let cached: usize = enrich_all(&source, vec!["45.155.205.233".to_owned(); 5])
        .await
        .into_iter()
        .map(|outcome| usize::from(outcome.expect("enriched").from_cache))
        .sum();
    let again = enrich(&source, "45.155.205.233").await.expect("enriched");
    assert!(again.from_cache);
    assert_eq!(again.credits, 0);
    assert_eq!(cached, 4, "identical calls in flight collapse into one");
    assert_eq!(
        requests(&sandbox.log().entries(), "/v1/asset/ip/report").len(),
        1,
        "one request for six enrichments"
    );

    let forced = enrich_with(&source, "45.155.205.233", EnrichOptions { force: true })
        .await
        .expect("enriched");
    assert!(!forced.from_cache);
    assert_eq!(
        requests(&sandbox.log().entries(), "/v1/asset/ip/report").len(),
        2,
        "--force asks again"
    );
    assert_eq!(source.metrics().cache_hits, 5);
}

#[tokio::test]
async fn an_invalid_key_makes_the_source_unusable() {
    for errors_in_body in [false, true] {
        let sandbox = sandbox(SandboxConfig {
            api_key: Some("the-right-key".into()),
            errors_in_body,
            ..SandboxConfig::default()
        })
        .await;
        let source = CriminalIp::new(settings(&sandbox)).expect("source");
        let check = source.check().await;
        assert!(
            matches!(&check, Err(SourceError::Unusable(m)) if m.contains("API key was rejected")),
            "{check:?}"
        );
        let result = enrich(&source, "8.8.8.8").await;
        assert!(
            matches!(result, Err(SourceError::Unusable(_))),
            "{result:?}"
        );
        let log = sandbox.log().entries();
        assert_eq!(log.len(), 2, "a rejected key is not retried: {log:?}");
        assert!(log.iter().all(|e| e.outcome == "invalid-key"));
    }
}

#[tokio::test]
async fn the_account_check_reports_the_account() {
    let sandbox = sandbox(SandboxConfig {
        credits: Some(500),
        ..SandboxConfig::default()
    })
    .await;
    let source = CriminalIp::new(settings(&sandbox)).expect("source");
    let text = source.check().await.expect("the key is accepted");
    assert!(
        text.contains("account type Sandbox") && text.contains("search allowance 500"),
        "{text}"
    );
    assert!(!text.contains(KEY), "the key is never shown: {text}");
}

#[tokio::test]
async fn the_service_running_out_of_credits_stops_all_calls() {
    let sandbox = sandbox(SandboxConfig {
        credits: Some(3),
        ..SandboxConfig::default()
    })
    .await;
    let mut s = settings(&sandbox);
    s.concurrency = 1;
    let source = CriminalIp::new(s).expect("source");
    let mut outcomes = Vec::new();
    for ip in ips(6) {
        outcomes.push(enrich(&source, &ip).await);
    }
    assert!(outcomes[..3].iter().all(Result::is_ok));
    assert!(
        outcomes[3..]
            .iter()
            .all(|o| matches!(o, Err(SourceError::BudgetExhausted))),
        "{outcomes:?}"
    );
    let log = sandbox.log().entries();
    assert_eq!(
        log.len(),
        4,
        "one refused call, then no more calls: {log:?}"
    );
    assert_eq!(log[3].outcome, "limit-exceeded");
    assert!(matches!(
        source.budget().events().as_slice(),
        [BudgetEvent::RefusedByService { .. }]
    ));
}

/// Calls already waiting for their turn under the rate limit when the service says the credits
/// are gone are not sent: the refusal is the last call.
#[tokio::test]
async fn no_call_waiting_for_the_rate_limiter_is_sent_after_the_service_refuses() {
    let sandbox = sandbox(SandboxConfig {
        credits: Some(2),
        ..SandboxConfig::default()
    })
    .await;
    let mut s = settings(&sandbox);
    s.concurrency = 6;
    s.max_requests = 1;
    s.per = Duration::from_millis(100);
    let source = Arc::new(CriminalIp::new(s).expect("source"));
    let outcomes = enrich_all(&source, ips(6)).await;
    let log = sandbox.log().entries();
    let refused: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, e)| e.outcome == "limit-exceeded")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(refused, [2], "one refusal, and nothing after it: {log:#?}");
    assert_eq!(log.len(), 3, "{log:#?}");
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 2);
    assert!(
        outcomes
            .iter()
            .filter(|o| o.is_err())
            .all(|o| matches!(o, Err(SourceError::BudgetExhausted))),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn the_budget_alerts_at_its_threshold_and_stops_at_its_limit() {
    let sandbox = sandbox(SandboxConfig::default()).await;
    let mut s = settings(&sandbox);
    s.concurrency = 1;
    s.budget = BudgetLimits {
        daily: Some(5),
        monthly: None,
        alert_percent: 80,
    };
    let source = CriminalIp::new(s).expect("source");
    let mut outcomes = Vec::new();
    for ip in ips(8) {
        outcomes.push(enrich(&source, &ip).await.map(|f| f.credits));
    }
    assert_eq!(outcomes[..5], [Ok(1), Ok(1), Ok(1), Ok(1), Ok(1)]);
    assert!(
        outcomes[5..]
            .iter()
            .all(|o| *o == Err(SourceError::BudgetExhausted)),
        "{outcomes:?}"
    );
    assert_eq!(
        sandbox.log().entries().len(),
        5,
        "spending stops at the budget"
    );
    assert_eq!(
        source.budget().events(),
        [
            BudgetEvent::Alert {
                period: Period::Day,
                used: 4,
                limit: 5,
                percent: 80
            },
            BudgetEvent::Exhausted {
                period: Period::Day,
                used: 5,
                limit: 5
            },
        ]
    );
}

/// 2026-12-04 23:00 UTC.
const LATE_EVENING_MS: i64 = 1_796_425_200_000;

fn source_on(
    clock: &Arc<ManualClock>,
    settings: CriminalIpSettings,
    spent_today: u64,
) -> CriminalIp {
    let context = SourceContext {
        spent: [("criminalip".to_owned(), (spent_today, spent_today))].into(),
        clock: Arc::clone(clock) as Arc<dyn Clock>,
        ..SourceContext::default()
    };
    CriminalIp::with_context(settings, &context).expect("source")
}

/// The daily budget is counted on the source's clock: what earlier runs spent today counts, and
/// the next UTC day starts from zero, with no waiting in the test.
#[tokio::test]
async fn the_daily_budget_starts_again_on_the_next_utc_day() {
    let sandbox = sandbox(SandboxConfig::default()).await;
    let clock = ManualClock::at(LATE_EVENING_MS);
    let mut s = settings(&sandbox);
    s.concurrency = 1;
    s.budget = BudgetLimits {
        daily: Some(2),
        monthly: None,
        alert_percent: 100,
    };
    let source = source_on(&clock, s, 1);
    let ips = ips(5);
    assert!(enrich(&source, &ips[0]).await.is_ok());
    assert_eq!(
        enrich(&source, &ips[1]).await.map(|f| f.credits),
        Err(SourceError::BudgetExhausted),
        "one credit was spent earlier today"
    );
    assert_eq!(sandbox.log().entries().len(), 1);
    clock.advance(Duration::from_secs(3600));
    let mut outcomes = Vec::new();
    for ip in &ips[2..] {
        outcomes.push(enrich(&source, ip).await.map(|f| f.credits));
    }
    assert_eq!(
        outcomes,
        [Ok(1), Ok(1), Err(SourceError::BudgetExhausted)],
        "a fresh day's two credits"
    );
    assert_eq!(
        sandbox.log().entries().len(),
        3,
        "the vendor saw each paid call"
    );
}

/// After the service says the credits are gone, nothing more is sent that UTC day; the next
/// day scry asks again.
#[tokio::test]
async fn the_services_refusal_holds_for_its_day() {
    let sandbox = sandbox(SandboxConfig {
        credits: Some(1),
        ..SandboxConfig::default()
    })
    .await;
    let clock = ManualClock::at(LATE_EVENING_MS);
    let mut s = settings(&sandbox);
    s.concurrency = 1;
    let source = source_on(&clock, s, 0);
    let ips = ips(4);
    assert!(enrich(&source, &ips[0]).await.is_ok());
    for ip in &ips[1..3] {
        assert_eq!(
            enrich(&source, ip).await.map(|f| f.credits),
            Err(SourceError::BudgetExhausted)
        );
    }
    let log = sandbox.log().entries();
    assert_eq!(log.len(), 2, "one refusal and then silence: {log:?}");
    assert_eq!(log[1].outcome, "limit-exceeded");
    clock.advance(Duration::from_secs(3600));
    assert_eq!(
        enrich(&source, &ips[3]).await.map(|f| f.credits),
        Err(SourceError::BudgetExhausted),
        "the sandbox still has no credits"
    );
    assert_eq!(
        sandbox.log().entries().len(),
        3,
        "but on the next day scry asked it again"
    );
}

#[tokio::test]
async fn server_errors_are_retried_and_retries_are_bounded() {
    let flaky = sandbox(SandboxConfig {
        faults: Faults {
            server_error: 0.4,
            ..Faults::default()
        },
        seed: 7,
        ..SandboxConfig::default()
    })
    .await;
    let mut s = settings(&flaky);
    s.retry.retries = 8;
    let source = CriminalIp::new(s).expect("source");
    for ip in ips(10) {
        enrich(&source, &ip).await.expect("retries get through");
    }
    let log = flaky.log().entries();
    assert!(log.iter().any(|e| e.outcome == "fault-server-error"));
    assert_eq!(log.iter().filter(|e| e.outcome == "ok").count(), 10);

    let broken = sandbox(SandboxConfig {
        faults: Faults {
            server_error: 1.0,
            ..Faults::default()
        },
        ..SandboxConfig::default()
    })
    .await;
    let source = CriminalIp::new(settings(&broken)).expect("source");
    let result = enrich(&source, "8.8.8.8").await;
    assert!(
        matches!(&result, Err(SourceError::Failed(m)) if m.contains("server error 500")),
        "{result:?}"
    );
    assert_eq!(
        broken.log().entries().len(),
        4,
        "the first attempt and 3 retries, then the failure is recorded"
    );
    assert_eq!(
        source.budget().used(),
        (0, 0),
        "failed calls cost no credits"
    );
}

#[tokio::test]
async fn timeouts_malformed_answers_and_429s_are_retried_then_recorded() {
    let hanging = sandbox(SandboxConfig {
        faults: Faults {
            timeout: 1.0,
            ..Faults::default()
        },
        timeout_hold: Duration::from_secs(3),
        ..SandboxConfig::default()
    })
    .await;
    let mut s = settings(&hanging);
    s.timeout = Duration::from_millis(200);
    s.retry.retries = 1;
    let source = CriminalIp::new(s).expect("source");
    let result = enrich(&source, "8.8.8.8").await;
    assert!(
        matches!(&result, Err(SourceError::Failed(m)) if m.contains("timed out")),
        "{result:?}"
    );

    let garbled = sandbox(SandboxConfig {
        faults: Faults {
            malformed: 1.0,
            ..Faults::default()
        },
        ..SandboxConfig::default()
    })
    .await;
    let mut s = settings(&garbled);
    s.retry.retries = 2;
    let source = CriminalIp::new(s).expect("source");
    let result = enrich(&source, "8.8.8.8").await;
    assert!(
        matches!(&result, Err(SourceError::Failed(m)) if m.contains("malformed")),
        "{result:?}"
    );
    assert_eq!(garbled.log().entries().len(), 3);

    let limited = sandbox(SandboxConfig {
        faults: Faults {
            rate_limited: 1.0,
            ..Faults::default()
        },
        ..SandboxConfig::default()
    })
    .await;
    let mut s = settings(&limited);
    s.retry.retries = 1;
    let source = CriminalIp::new(s).expect("source");
    let started = std::time::Instant::now();
    let result = enrich(&source, "8.8.8.8").await;
    assert!(
        matches!(&result, Err(SourceError::Failed(m)) if m.contains("rate limited")),
        "{result:?}"
    );
    let log = limited.log().entries();
    assert_eq!(log.len(), 2);
    assert!(
        log[1].at_ms - log[0].at_ms >= 1000.0,
        "Retry-After: 1 was honoured"
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn domains_reuse_recent_reports_or_scan_once_at_a_time() {
    let sandbox = sandbox(SandboxConfig {
        scan_duration: Duration::from_millis(300),
        ..SandboxConfig::default()
    })
    .await;
    let source = Arc::new(CriminalIp::new(settings(&sandbox)).expect("source"));
    // The sandbox gives about half the domains a recent earlier scan; enrich until both kinds showed.
    let (mut reused, mut scanned) = (0, 0);
    for i in 0..40 {
        let finding = enrich(&source, &format!("shop-{i}.example-store.com"))
            .await
            .expect("domain enriched");
        assert!(
            finding
                .report_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://www.criminalip.io/domain/report?scan_id="))
        );
        assert!(
            finding.details["mapped_ips"]
                .as_array()
                .is_some_and(|ips| !ips.is_empty()),
            "{}",
            finding.details
        );
        // The sandbox sends connected addresses' countries in lower case, as the service does
        // in places; they are kept upper case, like every other country code.
        let hosts = ["mapped_ips", "connected_ips"]
            .iter()
            .flat_map(|list| finding.details[*list].as_array().into_iter().flatten());
        for mapped in hosts {
            let country = mapped["country"].as_str().unwrap_or("");
            assert!(
                country.len() == 2 && country == country.to_ascii_uppercase(),
                "{mapped}"
            );
        }
        if finding.raw[0].1["reused"] == true {
            assert_eq!(finding.credits, 2, "the listing and the report");
            reused += 1
        } else {
            assert_eq!(
                finding.credits, 3,
                "the listing, the scan and the report; polls are free"
            );
            scanned += 1
        }
        if reused >= 1 && scanned >= 2 {
            break;
        }
    }
    assert!(
        reused >= 1 && scanned >= 2,
        "the sandbox has both kinds of domain"
    );
    let log = sandbox.log().entries();
    assert_eq!(
        requests(&log, "/v1/domain/scan").len(),
        scanned,
        "only domains without a recent report were scanned"
    );
    assert_eq!(requests(&log, "/v1/domain/reports").len(), reused + scanned);
    assert_eq!(
        log.iter()
            .filter(|e| e.path.starts_with("/v2/domain/report/"))
            .count(),
        reused + scanned,
        "one report each"
    );
    assert!(
        log.iter().any(|e| e.path.starts_with("/v1/domain/status/")),
        "scans were polled"
    );

    // Two scans at once from one source: the second waits for the first instead of being refused.
    let pair = vec![
        "nx-one.example-store.net".to_owned(),
        "nx-two.example-store.net".to_owned(),
    ];
    for outcome in enrich_all(&source, pair).await {
        outcome.expect("scanned");
    }
    assert!(
        sandbox.log().entries().iter().all(|e| e.outcome == "ok"),
        "one scan at a time: never 'still scanning'"
    );
}

#[tokio::test]
async fn a_second_client_waits_while_the_account_is_scanning() {
    let sandbox = sandbox(SandboxConfig {
        scan_duration: Duration::from_millis(400),
        ..SandboxConfig::default()
    })
    .await;
    let first = Arc::new(CriminalIp::new(settings(&sandbox)).expect("source"));
    let second = Arc::new(CriminalIp::new(settings(&sandbox)).expect("source"));
    // Domains the sandbox has no earlier scan for, so both clients must scan.
    let unscanned: Vec<String> = (0..200)
        .map(|i| format!("fresh-{i}.example-store.org"))
        .filter(|d| scry_sandbox::has_earlier_scan(0, d).not())
        .take(2)
        .collect();
    let a = tokio::spawn({
        let (s, d) = (Arc::clone(&first), unscanned[0].clone());
        async move { enrich(&s, &d).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let b = tokio::spawn({
        let (s, d) = (Arc::clone(&second), unscanned[1].clone());
        async move { enrich(&s, &d).await }
    });
    a.await.expect("task").expect("scanned");
    b.await
        .expect("task")
        .expect("the second scan ran once the first was done");
    let nonexistent = enrich(&first, "nx-gone.example-store.org")
        .await
        .expect("answered");
    assert_eq!(
        nonexistent.tags,
        ["nonexistent-domain"],
        "scan status -2 means the domain does not exist"
    );
    let log = sandbox.log().entries();
    assert!(
        log.iter().any(|e| e.outcome == "still-scanning"),
        "the second client was told to wait: {log:?}"
    );
    assert_eq!(
        log.iter()
            .filter(|e| e.path == "/v1/domain/scan" && e.outcome == "ok")
            .count(),
        3
    );
}

#[tokio::test]
async fn failed_scans_lite_scans_and_urls() {
    let sandbox = sandbox(SandboxConfig {
        scan_duration: Duration::from_millis(150),
        ..SandboxConfig::default()
    })
    .await;
    let source = CriminalIp::new(settings(&sandbox)).expect("source");
    let failed = enrich(&source, "scanfail-site.example-store.org").await;
    assert!(
        matches!(&failed, Err(SourceError::Failed(m)) if m.contains("scan failed")),
        "{failed:?}"
    );

    let url = enrich(&source, "https://login-portal.example-store.org/owa?x=1")
        .await
        .expect("url enriched");
    let scanned: Vec<String> = sandbox
        .log()
        .entries()
        .iter()
        .filter(|e| e.path == "/v1/domain/reports")
        .map(|e| e.query.clone())
        .collect();
    assert!(
        scanned
            .iter()
            .any(|q| q.contains("login-portal.example-store.org")),
        "the URL itself is the query: {scanned:?}"
    );
    assert!(url.details["phishing_probability"].is_number());

    let mut lite = settings(&sandbox);
    lite.domain_scan = ScanKind::Lite;
    lite.quick_check = true;
    let source = CriminalIp::new(lite).expect("source");
    let finding = enrich(&source, "lite-check.example-store.org")
        .await
        .expect("lite scan");
    assert!(
        finding.details["domain_score"].is_string(),
        "{}",
        finding.details
    );
    assert!(
        finding.details["quick_check"]["result"].is_string(),
        "{}",
        finding.details
    );
    let log = sandbox.log().entries();
    assert!(
        requests(&log, "/v1/domain/lite/scan").len() == 1
            && requests(&log, "/v1/domain/quick/hash/view").len() == 1
    );
}

#[tokio::test]
async fn optional_ip_calls_cost_one_call_each() {
    let sandbox = sandbox(SandboxConfig::default()).await;
    let mut s = settings(&sandbox);
    s.ip_calls = IpCalls {
        malicious_info: true,
        suspicious_info: true,
        privacy_threat: false,
    };
    let source = CriminalIp::new(s).expect("source");
    let finding = enrich(&source, "45.155.205.233").await.expect("enriched");
    assert_eq!(finding.credits, 3);
    assert!(finding.details.get("is_malicious").is_some());
    let paths: Vec<String> = sandbox
        .log()
        .entries()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(
        paths,
        [
            "/v1/asset/ip/report",
            "/v1/feature/ip/malicious-info",
            "/v2/feature/ip/suspicious-info"
        ]
    );
}

#[tokio::test]
async fn ip_findings_carry_scores_flags_services_cves_geo_and_the_report_link() {
    let sandbox = sandbox(SandboxConfig::default()).await;
    let source = CriminalIp::new(settings(&sandbox)).expect("source");
    let mut seen_tags = std::collections::BTreeSet::new();
    let mut with_cves = 0;
    let mut levels = std::collections::BTreeSet::new();
    for ip in ips(60) {
        let finding = enrich(&source, &ip).await.expect("enriched");
        let d = Exposure::read(&finding.details);
        assert_eq!(
            finding.report_url.as_deref(),
            Some(format!("https://www.criminalip.io/asset/report/{ip}").as_str())
        );
        assert!(
            d.asn.is_some() && d.as_name.is_some() && d.country.is_some(),
            "{d:?}"
        );
        assert!(d.inbound.is_some(), "{d:?}");
        levels.extend(d.outbound);
        with_cves += usize::from(!d.vulnerabilities.is_empty());
        let ports: Vec<u64> = d.services.iter().filter_map(|s| s.port).collect();
        let mut unique = ports.clone();
        unique.dedup();
        assert_eq!(ports, unique, "historical duplicates of a port are folded");
        seen_tags.extend(finding.tags.iter().cloned());
        assert!(finding.reasons.iter().all(|r| r.source == "criminalip"));
    }
    assert!(
        levels.len() >= 4,
        "a realistic spread of levels: {levels:?}"
    );
    assert!(with_cves > 5, "some hosts expose vulnerable services");
    for tag in ["hosting", "remote-access", "vulnerable"] {
        assert!(seen_tags.contains(tag), "{tag} among {seen_tags:?}");
    }
    assert!(
        seen_tags
            .iter()
            .any(|t| matches!(t.as_str(), "tor" | "vpn" | "proxy")),
        "{seen_tags:?}"
    );
}

#[tokio::test]
async fn the_key_never_reaches_the_request_log() {
    let path = tempfile::NamedTempFile::new().expect("temp file");
    let sandbox = sandbox(SandboxConfig {
        log_path: Some(path.path().to_owned()),
        ..SandboxConfig::default()
    })
    .await;
    let source = CriminalIp::new(settings(&sandbox)).expect("source");
    source.check().await.expect("account");
    enrich(&source, "8.8.8.8").await.expect("enriched");
    let written = std::fs::read_to_string(path.path()).expect("log file");
    assert_eq!(written.lines().count(), 2);
    assert!(!written.contains(KEY), "{written}");
    assert!(
        written.contains(&scry_sources::secret::fingerprint(KEY)),
        "entries carry the key's fingerprint"
    );
    assert!(!format!("{source:?}").contains(KEY));
}

/// scry never sends an unparsable IP (the parser rejects it first), so this checks the service's
/// "Invalid IP Address." answer on the wire, as the sandbox gives it, through the client's reading.
#[tokio::test]
async fn an_invalid_ip_answer_rejects_the_indicator() {
    use scry_sources::criminalip::client::{CipError, interpret};
    for errors_in_body in [false, true] {
        let sandbox = sandbox(SandboxConfig {
            errors_in_body,
            ..SandboxConfig::default()
        })
        .await;
        let response = reqwest::Client::new()
            .get(format!(
                "{}/v1/asset/ip/report?ip=999.1.1.1&full=true",
                sandbox.url()
            ))
            .header("x-api-key", KEY)
            .send()
            .await
            .expect("the sandbox answers");
        let status = response.status().as_u16();
        let body = response.text().await.expect("body");
        assert_eq!(
            interpret(status, &body),
            Err(CipError::InvalidIndicator("Invalid IP Address.".into())),
            "HTTP {status}: {body}"
        );
    }
}
