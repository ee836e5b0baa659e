//! The dashboard, computed once for every front end: indicators per severity, the high-priority
//! count and the new ones of the last 24 hours, the most shared ASNs (overall and among
//! high-priority indicators), countries, CVEs and tags, indicators and source calls per day, and
//! per source the credits used against the budget with a month-end forecast, the success rate,
//! latency and cache hit rate.

use scry_core::calendar::civil_from_days;
use scry_store::{Facet, IndicatorOrder, IndicatorQuery, Store, StoreError, StoredIndicator};
use serde::Serialize;

use crate::automation::now_ms;
use crate::config::LoadedConfig;
use crate::usage::{period_starts, source_usage};

const DAY_MS: i64 = 86_400_000;
/// Days the per-day series cover.
pub const DAYS: i64 = 14;
/// Values listed per top list.
const TOP: u32 = 10;
/// New high-priority indicators listed at most.
pub const NEW_HIGH_LISTED: u32 = 20;

#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    pub generated_at: i64,
    pub indicators: u64,
    /// critical, high, medium, low, info (each present, zero when none).
    pub by_severity: Vec<Count>,
    /// The priority the high-priority widget, TAXII collection and alerts use.
    pub high_priority: u8,
    /// Stored indicators at or above it.
    pub high_priority_count: u64,
    /// Of them, those first seen in the last 24 hours.
    pub new_high_priority_count: u64,
    /// The newest of those, newest first ([`NEW_HIGH_LISTED`] at most).
    pub new_high_priority: Vec<NewIndicator>,
    pub top_asns: Vec<Count>,
    /// The ASNs with the most indicators at or above `high_priority`: where the trouble sits.
    pub top_high_priority_asns: Vec<Count>,
    pub top_countries: Vec<Count>,
    pub top_cves: Vec<Count>,
    pub top_tags: Vec<Count>,
    /// The last [`DAYS`] UTC days, oldest first.
    pub days: Vec<Day>,
    pub sources: Vec<SourceHealth>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Count {
    pub name: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NewIndicator {
    pub indicator: String,
    pub kind: String,
    pub priority: u8,
    pub severity: String,
    pub first_seen: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Day {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub new_indicators: u64,
    /// Calls per source that day.
    pub calls: Vec<Count>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceHealth {
    pub source: String,
    pub calls_today: u64,
    pub failed_today: u64,
    /// Share of today's calls that got an answer (paid or cached), in percent.
    pub success_percent: Option<f64>,
    pub cache_hit_percent: Option<f64>,
    /// Today's HTTP requests to the vendor, the retries among them, and the share that failed
    /// (retried errors included), in percent.
    pub requests_today: u64,
    pub retries_today: u64,
    pub request_error_percent: Option<f64>,
    /// Today's failed requests by kind (`429`, `5xx`, `timeout`, `refused`, `limit`, `other`).
    pub errors_today: std::collections::BTreeMap<String, u64>,
    /// p50, p95, p99 of today's HTTP requests to the vendor, ms.
    pub latency_ms: Option<[i64; 3]>,
    pub credits_today: u64,
    pub credits_month: u64,
    pub daily_budget: Option<u64>,
    pub monthly_budget: Option<u64>,
    /// Credits at the end of the month at this month's pace so far.
    pub month_forecast: u64,
}

fn date_of(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days in the month that `day` falls in.
fn month_length(day: i64) -> i64 {
    let (y, m, _) = civil_from_days(day);
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    scry_core::calendar::days_from_civil((ny, nm, 1))
        - scry_core::calendar::days_from_civil((y, m, 1))
}

/// The dashboard as of now.
pub async fn dashboard(store: &dyn Store, loaded: &LoadedConfig) -> Result<Dashboard, StoreError> {
    let now = now_ms();
    let today = now.div_euclid(DAY_MS);
    let first_day = today - (DAYS - 1);
    let overview = store.overview(first_day * DAY_MS, TOP).await?;
    let high = loaded.config.server.high_priority;
    let by_severity = ["critical", "high", "medium", "low", "info"]
        .iter()
        .map(|s| Count {
            name: (*s).to_owned(),
            count: overview
                .by_severity
                .iter()
                .find(|(name, _)| name == s)
                .map_or(0, |(_, n)| *n),
        })
        .collect();
    let top = |kind: &str| -> Vec<Count> {
        overview
            .top
            .iter()
            .filter(|(k, _, _)| k == kind)
            .map(|(_, name, count)| Count {
                name: name.clone(),
                count: *count,
            })
            .collect()
    };
    // Exact counts from the priority index, whatever their size.
    let high_priority_count = store.count_at_priority(high, None).await?;
    let new_high_priority_count = store.count_at_priority(high, Some(now - DAY_MS)).await?;
    let newest = store
        .search_indicators(&IndicatorQuery {
            min_priority: high,
            order: IndicatorOrder::FirstSeen,
            descending: true,
            limit: NEW_HIGH_LISTED,
            ..IndicatorQuery::default()
        })
        .await?;
    let new_high_priority = newest
        .rows
        .iter()
        .map(|row| &row.stored)
        .filter(|s: &&StoredIndicator| s.first_seen >= now - DAY_MS)
        .map(|s| NewIndicator {
            indicator: s.record.value.clone(),
            kind: s.record.kind.clone(),
            priority: s.record.priority,
            severity: s.record.severity.clone(),
            first_seen: s.first_seen,
        })
        .collect();
    let days = (first_day..=today)
        .map(|day| {
            let mut calls: Vec<Count> = Vec::new();
            for (d, source, _, n) in &overview.calls_per_day {
                if *d != day {
                    continue;
                }
                match calls.iter_mut().find(|c| &c.name == source) {
                    Some(c) => c.count += n,
                    None => calls.push(Count {
                        name: source.clone(),
                        count: *n,
                    }),
                }
            }
            Day {
                date: date_of(day),
                new_indicators: overview
                    .new_per_day
                    .iter()
                    .find(|(d, _)| *d == day)
                    .map_or(0, |(_, n)| *n),
                calls,
            }
        })
        .collect();
    let (_, month_start) = period_starts(now);
    let elapsed = (now - month_start).max(1) as f64;
    let month_ms = (month_length(today) * DAY_MS) as f64;
    let criminalip = &loaded.config.sources.criminalip;
    let sources = source_usage(store)
        .await?
        .into_iter()
        .map(|u| {
            let answered = u.today.paid + u.today.cached;
            let budgets = criminalip
                .as_ref()
                .filter(|_| u.source == "criminalip")
                .map_or((None, None), |c| (c.daily_credits, c.monthly_credits));
            SourceHealth {
                calls_today: u.today.calls(),
                failed_today: u.today.failed,
                success_percent: (u.today.calls() > 0)
                    .then(|| answered as f64 * 100.0 / u.today.calls() as f64),
                cache_hit_percent: u.today.cache_hit_percent(),
                requests_today: u.today.attempts,
                retries_today: u.today.retries,
                request_error_percent: u.today.error_percent(),
                errors_today: u.today.errors.clone(),
                latency_ms: u.latency_ms.map(|(a, b, c)| [a, b, c]),
                credits_today: u.today.credits,
                credits_month: u.month.credits,
                daily_budget: budgets.0,
                monthly_budget: budgets.1,
                month_forecast: (u.month.credits as f64 * month_ms / elapsed).round() as u64,
                source: u.source,
            }
        })
        .collect();
    Ok(Dashboard {
        generated_at: now,
        indicators: overview.indicators,
        by_severity,
        high_priority: high,
        high_priority_count,
        new_high_priority_count,
        new_high_priority,
        top_asns: top("asn"),
        top_high_priority_asns: store
            .top_facet_values(Facet::Asn, high, TOP)
            .await?
            .into_iter()
            .map(|(name, count)| Count { name, count })
            .collect(),
        top_countries: top("country"),
        top_cves: top("cve"),
        top_tags: top("tag"),
        days,
        sources,
    })
}
