//! Whole runs through the engine with sources defined here: what reaches an external source, and
//! what the records say when sources answer, fail, run out of budget or break.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use scry_core::{
    Cleared, Destination, EgressGate, EgressPolicy, Observable, Reason, SkipReason, Tlp,
};
use scry_engine::input::{InputFormat, InputSource};
use scry_engine::{Engine, EnrichRequest, Progress, Record, Status, Summary};
use scry_sources::{Classification, EnrichOptions, Finding, Source, SourceError, SourceFuture};

/// What the recording source does for an indicator value.
#[derive(Clone)]
enum Behaviour {
    Answer { points: i32, cached: bool },
    Fail,
    Invalid,
    Budget,
    Unusable,
    Panic,
}

/// An external source that records every indicator it receives.
struct Recording {
    seen: Mutex<Vec<String>>,
    behaviour: HashMap<String, Behaviour>,
    max_tlp: Tlp,
    checks: AtomicUsize,
}

impl Recording {
    fn new(behaviour: &[(&str, Behaviour)]) -> Arc<Recording> {
        Arc::new(Recording {
            seen: Mutex::new(Vec::new()),
            behaviour: behaviour
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            max_tlp: Tlp::Amber,
            checks: AtomicUsize::new(0),
        })
    }

    fn seen(&self) -> Vec<String> {
        let mut seen = self.seen.lock().expect("lock").clone();
        seen.sort();
        seen
    }
}

impl Source for Recording {
    fn name(&self) -> &str {
        "recording"
    }
    fn destination(&self) -> Destination {
        Destination::External {
            max_tlp: self.max_tlp,
        }
    }
    fn supports(&self, observable: &Observable) -> bool {
        observable.is_enrichable()
    }
    fn enrich<'a>(
        &'a self,
        indicator: Cleared<'a>,
        _options: EnrichOptions,
    ) -> SourceFuture<'a, Result<Finding, SourceError>> {
        Box::pin(async move {
            let value = indicator.observable().value();
            self.seen.lock().expect("lock").push(value.clone());
            tokio::task::yield_now().await;
            match self
                .behaviour
                .get(&value)
                .cloned()
                .unwrap_or(Behaviour::Answer {
                    points: 10,
                    cached: false,
                }) {
                Behaviour::Answer { points, cached } => Ok(Finding {
                    reasons: vec![Reason {
                        source: "recording".into(),
                        signal: "score".into(),
                        value: points.to_string(),
                        points,
                    }],
                    tags: vec!["seen".into()],
                    details: serde_json::json!({"value": value}),
                    report_url: Some(format!("https://report.invalid/{value}")),
                    from_cache: cached,
                    credits: u32::from(!cached),
                    raw: Vec::new(),
                    asn: None,
                }),
                Behaviour::Fail => Err(SourceError::Failed("HTTP 503 after 3 attempts".into())),
                Behaviour::Invalid => Err(SourceError::InvalidIndicator("invalid ip".into())),
                Behaviour::Budget => Err(SourceError::BudgetExhausted),
                Behaviour::Unusable => Err(SourceError::Unusable("API key rejected".into())),
                Behaviour::Panic => panic!("source bug"),
            }
        })
    }
    fn check(&self) -> SourceFuture<'_, Result<String, SourceError>> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok("recording".into()) })
    }
}

fn gate(entries: &[&str]) -> EgressGate {
    let mut policy = EgressPolicy::default();
    for entry in entries {
        policy.allow(entry).expect("valid allowlist entry");
    }
    EgressGate::new(policy)
}

async fn run_with(
    engine: Engine,
    path: &Path,
    default_tlp: Option<Tlp>,
    concurrency: usize,
) -> (Summary, HashMap<String, Record>, Vec<Record>) {
    let engine = Arc::new(engine);
    engine.preflight().await;
    let request = EnrichRequest {
        inputs: vec![InputSource::file(path)],
        format: InputFormat::Auto,
        default_tlp,
        options: EnrichOptions::default(),
        concurrency,
        automation: None,
        dry_run: false,
    };
    let mut records = Vec::new();
    let summary = engine
        .enrich(request, Arc::new(Progress::default()), &mut |r| {
            records.push(r);
            Ok(())
        })
        .await
        .expect("run completes");
    let by_input = records
        .iter()
        .map(|r| (r.input.clone(), r.clone()))
        .collect();
    (summary, by_input, records)
}

async fn run(
    engine: Engine,
    path: &Path,
    default_tlp: Option<Tlp>,
) -> (Summary, HashMap<String, Record>, Vec<Record>) {
    run_with(engine, path, default_tlp, 4).await
}

fn input_file(dir: &Path, content: &str) -> std::path::PathBuf {
    let path = dir.join("batch.csv");
    std::fs::write(&path, content).expect("write");
    path
}

/// Invariant 1 at the level of a run: private, special-use, internal, allowlisted and
/// TLP-restricted indicators never reach an external source; everything else does, once.
#[tokio::test]
async fn only_cleared_indicators_reach_external_sources() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = input_file(
        dir.path(),
        "indicator,tlp\n8.8.8.8,\n10.0.0.1,\n192.0.2.1,\nfileserver.corp,\nhttp://intranet.local/x,\n1.1.1.1,\n\
         partner-portal.net,\nwww.trusted.org,\n9.9.9.9,red\n9.9.9.10,amber\nevil.com,\n8.8.8.8,\nuser@evil.com,\n",
    );
    let source = Recording::new(&[]);
    let engine = Engine::new(
        gate(&["1.1.1.0/24", "*.trusted.org"]),
        vec![Arc::new(Classification), source.clone()],
    );
    let (summary, records, _) = run(engine, &path, None).await;

    assert_eq!(
        source.seen(),
        ["8.8.8.8", "9.9.9.10", "evil.com", "partner-portal.net"]
    );
    let skip = |input: &str| records[input].skip_reason.map(SkipReason::as_str);
    assert_eq!(skip("10.0.0.1"), Some("private"));
    assert_eq!(skip("192.0.2.1"), Some("documentation"));
    assert_eq!(skip("fileserver.corp"), Some("internal-domain"));
    assert_eq!(skip("http://intranet.local/x"), Some("internal-domain"));
    assert_eq!(skip("1.1.1.1"), Some("allowlisted"));
    assert_eq!(skip("www.trusted.org"), Some("allowlisted"));
    assert_eq!(skip("9.9.9.9"), Some("tlp"));
    assert_eq!(skip("user@evil.com"), Some("unsupported-type"));
    assert_eq!(records["8.8.8.8"].status, Status::Enriched);
    assert_eq!(
        records["8.8.8.8"].sources["recording"]
            .report_url
            .as_deref(),
        Some("https://report.invalid/8.8.8.8")
    );
    assert_eq!(records["8.8.8.8"].priority, 10);
    assert_eq!(summary.duplicates, 1);
    assert_eq!(summary.unique, 12);
    assert_eq!(summary.enriched, 4);
    assert_eq!(summary.skipped, 8);
    assert_eq!(summary.credits, 4);
}

#[tokio::test]
async fn default_tlp_applies_where_the_input_states_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = input_file(dir.path(), "indicator,tlp\n8.8.8.8,\n8.8.4.4,green\n");
    let source = Recording::new(&[]);
    let engine = Engine::new(gate(&[]), vec![source.clone()]);
    let (_, records, _) = run(engine, &path, Some(Tlp::Red)).await;
    assert_eq!(source.seen(), ["8.8.4.4"]);
    assert_eq!(records["8.8.8.8"].tlp, Some(Tlp::Red));
    assert_eq!(
        records["8.8.8.8"].skip_reason.map(SkipReason::as_str),
        Some("tlp")
    );
}

#[tokio::test]
async fn source_outcomes_become_statuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = input_file(
        dir.path(),
        "indicator\n8.8.8.8\n8.8.4.4\n1.0.0.1\n9.9.9.9\n4.4.4.4\n5.5.5.5\n",
    );
    let source = Recording::new(&[
        (
            "8.8.8.8",
            Behaviour::Answer {
                points: 85,
                cached: false,
            },
        ),
        (
            "8.8.4.4",
            Behaviour::Answer {
                points: 30,
                cached: true,
            },
        ),
        ("1.0.0.1", Behaviour::Fail),
        ("9.9.9.9", Behaviour::Invalid),
        ("4.4.4.4", Behaviour::Budget),
        ("5.5.5.5", Behaviour::Panic),
    ]);
    let engine = Engine::new(gate(&[]), vec![Arc::new(Classification), source.clone()]);
    let (summary, records, _) = run(engine, &path, None).await;
    let high = &records["8.8.8.8"];
    assert_eq!(
        (high.status, high.priority, high.severity.as_str()),
        (Status::Enriched, 85, "high")
    );
    assert_eq!(high.reasons[0].points, 85);
    assert_eq!(high.tags, ["seen"]);
    assert_eq!(records["8.8.4.4"].status, Status::Cached);
    assert_eq!(records["1.0.0.1"].status, Status::Failed);
    assert_eq!(
        records["1.0.0.1"].error.as_deref(),
        Some("HTTP 503 after 3 attempts")
    );
    assert_eq!(records["9.9.9.9"].status, Status::Rejected);
    assert_eq!(
        records["4.4.4.4"].skip_reason.map(SkipReason::as_str),
        Some("budget")
    );
    let broken = &records["5.5.5.5"];
    assert_eq!(broken.status, Status::Failed);
    assert!(
        broken
            .error
            .as_deref()
            .is_some_and(|e| e.contains("internal error")),
        "{broken:?}"
    );
    assert!(broken.position.ends_with(":7"), "{}", broken.position);
    assert_eq!(
        (
            summary.enriched,
            summary.cached,
            summary.failed,
            summary.rejected,
            summary.skipped
        ),
        (1, 1, 2, 1, 1)
    );
    assert!(summary.unusable_sources.is_empty());
}

#[tokio::test]
async fn an_unusable_source_is_turned_off_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = input_file(dir.path(), "indicator\n8.8.8.8\n8.8.4.4\n1.0.0.1\n");
    let source = Recording::new(&[
        ("8.8.8.8", Behaviour::Unusable),
        ("8.8.4.4", Behaviour::Unusable),
        ("1.0.0.1", Behaviour::Unusable),
    ]);
    let engine = Engine::new(gate(&[]), vec![source.clone()]);
    let (summary, records, _) = run_with(engine, &path, None, 1).await;
    assert_eq!(
        source.checks.load(Ordering::SeqCst),
        1,
        "pre-flight check ran"
    );
    assert_eq!(
        source.seen(),
        ["8.8.8.8"],
        "nothing is sent to a source after it said it is unusable"
    );
    assert_eq!(
        summary.unusable_sources,
        [("recording".to_owned(), "API key rejected".to_owned())]
    );
    assert!(
        records.values().all(|r| r.status == Status::Failed),
        "{records:?}"
    );
    assert_eq!(summary.failed, 3);
}

#[tokio::test]
async fn without_external_sources_the_status_says_what_would_be_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = input_file(dir.path(), "indicator\n8.8.8.8\n10.1.1.1\nCVE-2021-44228\n");
    let engine = Engine::new(gate(&[]), vec![Arc::new(Classification)]);
    let (summary, records, all) = run(engine, &path, None).await;
    assert_eq!(records["8.8.8.8"].status, Status::Enriched);
    // Reference id from the OASIS stix2 library.
    assert_eq!(
        records["8.8.8.8"].stix_id.as_deref(),
        Some("ipv4-addr--2f689bf9-0ff2-545f-aa61-e495eb8cecc7")
    );
    assert_eq!(
        records["10.1.1.1"].skip_reason.map(SkipReason::as_str),
        Some("private")
    );
    assert_eq!(
        records["CVE-2021-44228"]
            .skip_reason
            .map(SkipReason::as_str),
        Some("unsupported-type")
    );
    assert_eq!(
        records["8.8.8.8"].sources["classify"].data["class"],
        "public"
    );
    assert_eq!(all.len(), 3);
    assert_eq!(summary.credits, 0);
}
