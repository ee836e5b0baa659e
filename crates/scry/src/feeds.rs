//! `scry feeds`: pull the configured threat feeds now, and see how each is doing.

use std::process::ExitCode;

use scry_engine::config::LoadedConfig;
use scry_sources::feeds::PullOutcome;
use serde_json::json;

use crate::cli::ShowFormat;
use crate::{format_ms, open_store, runtime, usage};

/// `scry feeds pull`: exit 1 when a feed could not be pulled.
pub(crate) fn pull(
    loaded: &LoadedConfig,
    store_url: Option<&str>,
    force: bool,
    names: &[String],
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let Some(feeds) = loaded.feeds().map_err(usage)? else {
        eprintln!(
            "no feeds are configured (add a [feeds.NAME] table; `scry config init` shows one)"
        );
        return Ok(ExitCode::SUCCESS);
    };
    if let Some(unknown) = names
        .iter()
        .find(|n| !feeds.settings().iter().any(|f| &f.name == *n))
    {
        return Err(usage(anyhow::anyhow!(
            "no feed is named {unknown:?} (configured: {})",
            feeds
                .settings()
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let url = loaded.store_url(store_url);
    let max_attempts = loaded.config.worker.max_attempts;
    let (reports, queued) = runtime()?.block_on(async {
        let store = open_store(&url).await?;
        anyhow::Ok(
            scry_engine::worker::pull_feeds(&feeds, store.as_ref(), force, names, max_attempts)
                .await?,
        )
    })?;
    let mut failed = false;
    for report in &reports {
        let line = match &report.outcome {
            PullOutcome::Updated {
                entries,
                problems,
                new,
            } => {
                if !quiet {
                    for problem in problems.iter().take(20) {
                        eprintln!("{}: {problem}", report.feed);
                    }
                    if problems.len() > 20 {
                        eprintln!("{}: … {} more problems", report.feed, problems.len() - 20);
                    }
                }
                format!(
                    "updated: {entries} entries, {} newly listed, {} lines not read",
                    new.len(),
                    problems.len()
                )
            }
            PullOutcome::NotModified => "not modified".to_owned(),
            PullOutcome::NotDue => "not due (pulled less than its interval ago)".to_owned(),
            PullOutcome::Failed(error) => {
                failed = true;
                format!("failed: {error}")
            }
        };
        if !quiet || matches!(report.outcome, PullOutcome::Failed(_)) {
            eprintln!("{}: {line}", report.feed);
        }
    }
    if !quiet && queued > 0 {
        eprintln!("{queued} newly listed indicators queued for enrichment");
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `scry feeds status`.
pub(crate) fn status(loaded: &LoadedConfig, format: ShowFormat) -> anyhow::Result<ExitCode> {
    let Some(feeds) = loaded.feeds().map_err(usage)? else {
        eprintln!("no feeds are configured");
        return Ok(ExitCode::SUCCESS);
    };
    let time = |ms: Option<i64>| ms.map(format_ms);
    let rows: Vec<serde_json::Value> = feeds
        .settings()
        .iter()
        .map(|feed| {
            let state = feeds.state(feed);
            let mut row = feed.describe();
            row["checked"] = json!(time(state.checked_ms));
            row["changed"] = json!(time(state.changed_ms));
            row["entries"] = json!(state.entries);
            row["problems"] = json!(state.problems);
            row["last_error"] = json!(state.last_error);
            row["failed"] = json!(time(state.failed_ms));
            row
        })
        .collect();
    match format {
        ShowFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "dir": feeds.dir(), "feeds": rows }))?
        ),
        ShowFormat::Text => {
            println!("feeds in {}", feeds.dir().display());
            for row in &rows {
                let text = |key: &str| row[key].as_str().unwrap_or("never").to_owned();
                println!(
                    "{:<16} {:>8} entries  checked {}  changed {}  {}",
                    text("name"),
                    row["entries"],
                    text("checked"),
                    text("changed"),
                    text("location")
                );
                if let Some(error) = row["last_error"].as_str() {
                    println!("{:<16} last pull failed {}: {error}", "", text("failed"));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
