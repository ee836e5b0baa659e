//! The queue commands: `scry ingest` (queue indicators), `scry worker` (run jobs until stopped)
//! and `scry jobs run` (run jobs until none is due). The engine's worker does the work; this
//! module builds it from the configuration and reports what it did.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use scry_engine::automation::ACTION_JOB;
use scry_engine::config::LoadedConfig;
use scry_engine::setup::{self, Rules, Services, SetupError};
use scry_engine::worker::{self, IngestRequest, WorkReport, Worker, WorkerSettings};
use scry_engine::{Engine, Progress};
use scry_store::Store;

use crate::cli::{IngestArgs, WorkerArgs};
use crate::{open_store, resolve_inputs, runtime, usage};

/// The services of the composition root over `store` (none: nothing kept or shared), as a
/// command needs them: configuration and rule problems are usage errors (exit status 2).
pub(crate) async fn services(
    loaded: &LoadedConfig,
    store: Option<&Arc<dyn Store>>,
    rules: Rules,
) -> anyhow::Result<Services> {
    setup::build(loaded, store, rules)
        .await
        .map_err(|error| match error {
            SetupError::Rules(errors) => usage(anyhow!(
                "the rules do not load ({} problem{}):\n  {}",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
                errors.join("\n  ")
            )),
            SetupError::Config(error) => usage(error),
            other => anyhow::Error::new(other),
        })
}

/// Worker settings from `[worker]` and `[enrich]`, for the given job kinds (all when empty).
pub(crate) fn settings(
    loaded: &LoadedConfig,
    kinds: Vec<&'static str>,
    concurrency: Option<usize>,
) -> anyhow::Result<WorkerSettings> {
    let config = &loaded.config.worker;
    let concurrency = concurrency.unwrap_or(loaded.config.enrich.concurrency);
    if concurrency == 0 {
        return Err(usage(anyhow!("--concurrency must be at least 1")));
    }
    Ok(WorkerSettings {
        kinds,
        lease: Duration::from_secs(config.lease_seconds),
        concurrency,
        refresh_after: (config.refresh_after_hours > 0.0)
            .then(|| Duration::from_secs_f64(config.refresh_after_hours * 3600.0)),
        refresh_batch: config.refresh_batch,
        max_attempts: config.max_attempts,
        poll: Duration::from_secs_f64(config.poll_seconds),
    })
}

/// The engine and the rules over `store`, as configured.
pub(crate) async fn engine_and_rules(
    loaded: &LoadedConfig,
    store: &Arc<dyn Store>,
    dry_run: bool,
) -> anyhow::Result<(Arc<Engine>, Arc<scry_engine::automation::Automation>)> {
    let services = services(loaded, Some(store), Rules::On { dry_run }).await?;
    let automation = services.automation.expect("rules were asked for");
    Ok((services.engine, automation))
}

/// A worker over `store` with the configured sources and rules.
async fn worker(
    loaded: &LoadedConfig,
    store: &Arc<dyn Store>,
    dry_run: bool,
    kinds: Vec<&'static str>,
    concurrency: Option<usize>,
) -> anyhow::Result<Worker> {
    let (engine, automation) = engine_and_rules(loaded, store, dry_run).await?;
    Ok(Worker::new(
        engine,
        Arc::clone(store),
        Some(automation),
        settings(loaded, kinds, concurrency)?,
    )
    .with_feeds(loaded.feeds().map_err(usage)?))
}

/// A worker that runs only rule actions, for the end of a direct `scry enrich`.
pub(crate) fn action_worker(
    loaded: &LoadedConfig,
    engine: Arc<Engine>,
    store: &Arc<dyn Store>,
    automation: Arc<scry_engine::automation::Automation>,
) -> anyhow::Result<Worker> {
    Ok(Worker::new(
        engine,
        Arc::clone(store),
        Some(automation),
        settings(loaded, vec![ACTION_JOB], None)?,
    ))
}

/// `scry ingest`.
pub(crate) fn ingest(
    args: &IngestArgs,
    loaded: &LoadedConfig,
    store_url: Option<&str>,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let inputs = resolve_inputs(&args.inputs)?;
    let default_tlp = match &args.tlp {
        Some(level) => Some(level.parse().map_err(|e| usage(anyhow!("--tlp: {e}")))?),
        None => loaded.default_tlp().map_err(usage)?,
    };
    let url = loaded.store_url(store_url);
    let runtime = runtime()?;
    runtime.block_on(async {
        let store = open_store(&url).await?;
        let request = IngestRequest {
            inputs,
            format: args.input_format,
            default_tlp,
            force: args.force,
            max_attempts: loaded.config.worker.max_attempts,
            origin: "ingest".into(),
            max_indicators: None,
        };
        let mut on_rejected = |r: &scry_engine::input::Rejection| {
            if !quiet {
                let what = if r.input.is_empty() {
                    String::new()
                } else {
                    format!(" {:?}", r.input)
                };
                eprintln!("{}: rejected{what}: {}", r.position, r.reason);
            }
        };
        let summary = worker::ingest(
            store.as_ref(),
            request,
            Arc::new(Progress::default()),
            &mut on_rejected,
        )
        .await?;
        if !quiet {
            eprintln!(
                "{} read, {} duplicates, {} rejected; {} queued for enrichment in {:.1?}; \
                 `scry worker` or `scry jobs run` enriches them",
                summary.read,
                summary.duplicates,
                summary.rejected,
                summary.queued,
                started.elapsed()
            );
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// One line about what a worker did.
pub(crate) fn report_line(report: &WorkReport) -> String {
    let e = &report.enrich;
    let mut line = format!(
        "enrichments: {} done ({} enriched, {} cached, {} skipped, {} failed), {} waiting for a retry, {} credits; \
         actions: {} done, {} failed, {} waiting for a retry",
        e.enriched + e.cached + e.skipped + e.failed + e.rejected,
        e.enriched,
        e.cached,
        e.skipped,
        e.failed,
        report.enrich_retrying,
        e.credits,
        report.actions.done,
        report.actions.failed,
        report.actions.retrying
    );
    if e.rules.matched > 0 || e.rules.errors > 0 {
        line.push_str(&format!(
            "; rules: {} matched, {} actions queued, {} failed evaluations",
            e.rules.matched, e.rules.enqueued, e.rules.errors
        ));
    }
    if report.feeds_updated > 0 || report.feed_entries_queued > 0 {
        line.push_str(&format!(
            "; feeds: {} updated, {} newly listed indicators queued",
            report.feeds_updated, report.feed_entries_queued
        ));
    }
    for failure in &report.feed_failures {
        line.push_str(&format!("; feed pull failed: {failure}"));
    }
    if report.refreshes_queued > 0 {
        line.push_str(&format!(
            "; {} queued for a scheduled refresh",
            report.refreshes_queued
        ));
    }
    if report.blocks_expired > 0 {
        line.push_str(&format!(
            "; {} blocklist entries expired",
            report.blocks_expired
        ));
    }
    line
}

/// `scry jobs run`: queues due refreshes, then runs every due job and stops.
pub(crate) fn jobs_run(
    loaded: &LoadedConfig,
    store_url: Option<&str>,
    dry_run: bool,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let url = loaded.store_url(store_url);
    let runtime = runtime()?;
    runtime.block_on(async {
        let store = open_store(&url).await?;
        let worker = worker(loaded, &store, dry_run, Vec::new(), None).await?;
        let refreshes = worker.schedule_refresh().await?;
        let mut report = worker.drain(&Progress::default()).await?;
        report.refreshes_queued = refreshes;
        if !quiet {
            eprintln!("{}", report_line(&report));
        }
        let failed = report.actions.failed + report.enrich.failed;
        anyhow::Ok(if failed > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    })
}

/// `scry worker`: works until Ctrl-C or SIGTERM, then finishes the current pass and stops.
pub(crate) fn run_worker(
    args: &WorkerArgs,
    loaded: &LoadedConfig,
    store_url: Option<&str>,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let url = loaded.store_url(store_url);
    let runtime = runtime()?;
    runtime.block_on(async {
        let store = open_store(&url).await?;
        let worker = worker(loaded, &store, args.dry_run, Vec::new(), args.concurrency).await?;
        if !quiet {
            eprintln!(
                "worker on {}; Ctrl-C or SIGTERM stops it after the current pass",
                scry_store::redact(&url)
            );
        }
        let mut on_pass = |pass: &WorkReport| {
            if !quiet && *pass != WorkReport::default() {
                eprintln!("{}", report_line(pass));
            }
        };
        let total = worker
            .run(stop_signal(), &Progress::default(), &mut on_pass)
            .await?;
        if !quiet {
            eprintln!("stopped; in all: {}", report_line(&total));
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// Completes on Ctrl-C, or on SIGTERM where there is one.
pub(crate) async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
