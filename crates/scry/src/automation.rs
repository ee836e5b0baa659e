//! The automation commands: `scry rules check|test`, `scry history`, `scry sources status`,
//! `scry jobs status`, and the EDL export of blocklists. Rendering only; rules, jobs and history live in the engine and
//! the store.

use std::io::Write;
use std::process::ExitCode;

use anyhow::anyhow;
use std::sync::Arc;

use scry_engine::automation::{Automation, now_ms};
use scry_engine::config::LoadedConfig;
use scry_engine::setup::Rules;
use scry_store::EventFilter;

use crate::cli::{HistoryArgs, HistoryFormat, ShowFormat};
use crate::{format_ms, indicator_argument, not_stored, open_store, runtime, since_ms, usage};

/// Loads rules, lists, channels, ticket systems and blocklists through the composition root,
/// without a store; every mistake is listed.
fn load_rules(loaded: &LoadedConfig) -> anyhow::Result<Arc<Automation>> {
    let services = runtime()?.block_on(crate::queue::services(
        loaded,
        None,
        Rules::On { dry_run: false },
    ))?;
    Ok(services.automation.expect("rules were asked for"))
}

/// `scry rules check`.
pub(crate) fn rules_check(loaded: &LoadedConfig) -> anyhow::Result<ExitCode> {
    let automation = load_rules(loaded)?;
    let rules = automation.rules().rules();
    for rule in rules {
        let spec = &rule.spec;
        out!(
            "{} {:<24} on {:<20} when {}",
            if spec.enabled { "on " } else { "off" },
            spec.name,
            spec.on
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(","),
            spec.when
        );
        for action in &spec.actions {
            out!("    → {}", action.describe());
        }
    }
    eprintln!(
        "{} rule{} loaded, no problems{}",
        rules.len(),
        if rules.len() == 1 { "" } else { "s" },
        if automation.is_dry_run() {
            "; [automation] dry_run is on: actions are recorded, not done"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// `scry rules test INDICATOR`.
pub(crate) fn rules_test(
    loaded: &LoadedConfig,
    store_url: Option<&str>,
    indicator: &str,
) -> anyhow::Result<ExitCode> {
    let observable = indicator_argument(indicator)?;
    let automation = load_rules(loaded)?;
    let url = loaded.store_url(store_url);
    let runtime = runtime()?;
    runtime.block_on(async {
        let store = open_store(&url).await?;
        let Some(stored) = store
            .indicator(observable.stix_type(), &observable.value())
            .await?
        else {
            return Ok(not_stored(&observable, &url));
        };
        let workflow = store.workflow(&stored.record.stix_id).await?;
        let verdicts = automation.test(&stored.record, workflow.as_ref());
        out!(
            "{} {} priority {} ({})",
            stored.record.kind,
            stored.record.value,
            stored.record.priority,
            stored.record.severity
        );
        if verdicts.is_empty() {
            out!("no rule listens to any trigger");
        }
        for verdict in verdicts {
            let (trigger, rule, actions) = (verdict.trigger, verdict.rule, verdict.actions);
            match verdict.matched {
                Ok(true) => {
                    out!("would fire   {rule} (on {})", trigger.as_str());
                    for action in actions {
                        out!("    → {action}");
                    }
                }
                Ok(false) => out!("no match     {rule} (on {})", trigger.as_str()),
                Err(error) => out!("error        {rule} (on {}): {error}", trigger.as_str()),
            }
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// `scry history`.
pub(crate) fn history(
    args: &HistoryArgs,
    loaded: &LoadedConfig,
    store_url: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let stix_id = args
        .indicator
        .as_deref()
        .map(|text| indicator_argument(text).map(|o| scry_stix::observable_id(&o)))
        .transpose()?;
    let since = since_ms(args.since.as_deref())?;
    let filter = EventFilter {
        stix_id,
        rule: args.rule.clone(),
        kind: args.kind.clone(),
        since,
        before_id: None,
        limit: args.limit,
    };
    let url = loaded.store_url(store_url);
    let runtime = runtime()?;
    runtime.block_on(async {
        let store = open_store(&url).await?;
        let events = store.events(&filter).await?;
        for e in &events {
            match args.format {
                HistoryFormat::Jsonl => out!(
                    "{}",
                    serde_json::json!({
                        "id": e.id, "at": format_ms(e.at), "kind": e.kind, "indicator": e.indicator,
                        "stix_id": e.stix_id, "rule": e.rule, "action": e.action, "outcome": e.outcome,
                        "origin": e.origin, "account": e.account, "duration_ms": e.duration_ms, "credits": e.credits, "detail": e.detail,
                    })
                ),
                HistoryFormat::Table => {
                    let what = match (&e.rule, &e.action) {
                        (Some(rule), Some(action)) => format!("{rule} → {action}"),
                        (Some(rule), None) => rule.clone(),
                        (None, Some(action)) => action.clone(),
                        (None, None) => e.origin.clone(),
                    };
                    let detail = match &e.detail {
                        serde_json::Value::Object(map) if map.is_empty() => String::new(),
                        other => other.to_string(),
                    };
                    out!(
                        "{}  {:<6} {:<9} {:<28} {:<30} {}{}",
                        format_ms(e.at),
                        e.kind,
                        e.outcome,
                        e.indicator.as_deref().unwrap_or("-"),
                        what,
                        if e.credits > 0 { format!("{} credits ", e.credits) } else { String::new() },
                        detail
                    );
                }
            }
        }
        if events.len() == args.limit as usize {
            eprintln!("showing the newest {}; raise --limit for more", args.limit);
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// `scry sources status`: the enrichment performance report, from the history.
pub(crate) fn sources_status(
    loaded: &LoadedConfig,
    store_url: Option<&str>,
    format: ShowFormat,
) -> anyhow::Result<ExitCode> {
    let budget = |name: &str| -> (Option<u64>, Option<u64>) {
        match (&loaded.config.sources.criminalip, name) {
            (Some(c), "criminalip") => (c.daily_credits, c.monthly_credits),
            _ => (None, None),
        }
    };
    let url = loaded.store_url(store_url);
    let runtime = runtime()?;
    let usage = runtime.block_on(async {
        let store = open_store(&url).await?;
        anyhow::Ok(scry_engine::usage::source_usage(store.as_ref()).await?)
    })?;
    if format == ShowFormat::Json {
        let period = |p: &scry_engine::usage::PeriodUsage, limit| p.summary(limit);
        let sources: Vec<serde_json::Value> = usage
            .iter()
            .map(|u| {
                let (daily, monthly) = budget(&u.source);
                serde_json::json!({
                    "source": u.source,
                    "today": period(&u.today, daily),
                    "month": period(&u.month, monthly),
                    "latency_ms": u.latency_ms.map(|(p50, p95, p99)| serde_json::json!({"p50": p50, "p95": p95, "p99": p99})),
                })
            })
            .collect();
        out!("{}", serde_json::to_string_pretty(&sources)?);
        return Ok(ExitCode::SUCCESS);
    }
    if usage.is_empty() {
        out!(
            "no vendor calls recorded in this month in {}",
            scry_store::redact(&url)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let percent = |p: Option<f64>| p.map_or_else(|| "-".to_owned(), |p| format!("{p:.0} %"));
    out!(
        "{:<12} {:<6} {:>8} {:>8} {:>8} {:>8} {:>10} {:>8} {:>8} {:>7}  credits",
        "source",
        "period",
        "calls",
        "paid",
        "cached",
        "failed",
        "cache hits",
        "requests",
        "retries",
        "errors"
    );
    for u in &usage {
        let (daily, monthly) = budget(&u.source);
        for (name, p, limit) in [("today", &u.today, daily), ("month", &u.month, monthly)] {
            let credits = match limit {
                Some(limit) if limit > 0 => format!(
                    "{} of {limit} ({:.0} %)",
                    p.credits,
                    p.credits as f64 * 100.0 / limit as f64
                ),
                _ => format!("{} (no limit set)", p.credits),
            };
            out!(
                "{:<12} {:<6} {:>8} {:>8} {:>8} {:>8} {:>10} {:>8} {:>8} {:>7}  {credits}",
                u.source,
                name,
                p.calls(),
                p.paid,
                p.cached,
                p.failed,
                percent(p.cache_hit_percent()),
                p.attempts,
                p.retries,
                percent(p.error_percent())
            );
            // A budget limits one account (a key at a service address): with several, each.
            if p.credits_by_account.len() > 1 {
                for (account, credits) in &p.credits_by_account {
                    out!("{:<19} {credits} credits with {account}", "");
                }
            }
        }
        if !u.today.errors.is_empty() {
            let kinds: Vec<String> = u
                .today
                .errors
                .iter()
                .map(|(kind, n)| format!("{kind} {n}"))
                .collect();
            out!(
                "{:<12} today's failed requests by kind: {}",
                u.source,
                kinds.join(", ")
            );
        }
        if let Some((p50, p95, p99)) = u.latency_ms {
            out!(
                "{:<12} latency of today's requests to the vendor: p50 {p50} ms, p95 {p95} ms, p99 {p99} ms",
                u.source
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `scry jobs status`.
pub(crate) fn jobs_status(
    loaded: &LoadedConfig,
    store_url: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let url = loaded.store_url(store_url);
    let runtime = runtime()?;
    runtime.block_on(async {
        let store = open_store(&url).await?;
        let depth = store.queue_depth(now_ms()).await?;
        out!(
            "ready {}\nwaiting {}\ndone {}\nfailed {}",
            depth.ready,
            depth.waiting,
            depth.done,
            depth.failed
        );
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// `scry export --format edl --list NAME`: the list's live entries, one per line.
pub(crate) fn export_edl(
    loaded: &LoadedConfig,
    store_url: Option<&str>,
    list: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<u64> {
    let Some(list) = list else {
        return Err(usage(anyhow!("--format edl needs --list NAME")));
    };
    if !loaded.config.automation.blocklists.contains_key(list) {
        let known: Vec<&str> = loaded
            .config
            .automation
            .blocklists
            .keys()
            .map(String::as_str)
            .collect();
        return Err(usage(anyhow!(
            "no blocklist named {list:?} ({})",
            if known.is_empty() {
                "none is configured in [automation.blocklists]".to_owned()
            } else {
                format!("configured: {}", known.join(", "))
            }
        )));
    }
    let url = loaded.store_url(store_url);
    let runtime = runtime()?;
    runtime.block_on(async {
        let store = open_store(&url).await?;
        let entries = store.blocklist(list, now_ms()).await?;
        let config = &loaded.config.automation.blocklists[list];
        let rendered = scry_engine::blocklist::render(config, entries);
        if let Some(warning) = rendered.cap_warning(list, config) {
            eprintln!("warning: {warning}");
        }
        out.write_all(rendered.body.as_bytes())?;
        anyhow::Ok(rendered.served as u64)
    })
}
