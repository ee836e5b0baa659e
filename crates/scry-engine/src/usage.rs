//! What the sources cost and how they behave, from the automation history: the seeds'
//! enrichment performance report (`scry sources status`), and the credits earlier runs spent, so
//! budgets hold across processes and workers rather than starting from zero in each. Budget
//! events (alert share crossed, limit reached, refused by the service) become history entries and
//! `budget-alert` rule input here.

use std::collections::{BTreeMap, HashMap};

use scry_core::calendar::{civil_from_days, days_from_civil};
use scry_rules::BudgetContext;
use scry_sources::guard::{BudgetEvent, Day, Period, today_utc};
use scry_store::{CallCount, Event, Store, StoreError};
use serde_json::json;

use crate::Engine;
use crate::automation::now_ms;

const DAY_MS: i64 = 86_400_000;

/// Calls of one source in one period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeriodUsage {
    /// Answers bought (a new request that succeeded).
    pub paid: u64,
    /// Answers reused from the cache or the answer archive.
    pub cached: u64,
    pub failed: u64,
    pub credits: u64,
}

impl PeriodUsage {
    pub fn calls(&self) -> u64 {
        self.paid + self.cached + self.failed
    }

    /// Share of successful answers that cost nothing, in percent.
    pub fn cache_hit_percent(&self) -> Option<f64> {
        let answered = self.paid + self.cached;
        (answered > 0).then(|| self.cached as f64 * 100.0 / answered as f64)
    }

    /// Share of calls that failed, in percent.
    pub fn error_percent(&self) -> Option<f64> {
        (self.calls() > 0).then(|| self.failed as f64 * 100.0 / self.calls() as f64)
    }

    fn add(&mut self, count: &CallCount) {
        match count.outcome.as_str() {
            "ok" => self.paid += count.calls,
            "cached" => self.cached += count.calls,
            _ => self.failed += count.calls,
        }
        self.credits += count.credits;
    }
}

/// One source's report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceUsage {
    pub source: String,
    pub today: PeriodUsage,
    pub month: PeriodUsage,
    /// Latency of today's paid calls, in ms: p50, p95, p99 (`None` without any).
    pub latency_ms: Option<(i64, i64, i64)>,
}

/// The start of the current UTC day and month, in Unix ms.
pub fn period_starts(now_ms: i64) -> (i64, i64) {
    let days = now_ms.div_euclid(DAY_MS);
    let (year, month, _) = civil_from_days(days);
    (days * DAY_MS, days_from_civil((year, month, 1)) * DAY_MS)
}

/// Latency samples per source at most (the newest of today).
const LATENCY_SAMPLES: u32 = 100_000;

/// Calls recorded today and this month (UTC), per source and outcome.
async fn period_counts(
    store: &dyn Store,
) -> Result<(i64, Vec<CallCount>, Vec<CallCount>), StoreError> {
    let (day_start, month_start) = period_starts(now_ms());
    let today = store.call_counts(day_start).await?;
    let month = store.call_counts(month_start).await?;
    Ok((day_start, today, month))
}

/// Today's and this month's calls per source, with today's latency percentiles.
pub async fn source_usage(store: &dyn Store) -> Result<Vec<SourceUsage>, StoreError> {
    let (day_start, today, month) = period_counts(store).await?;
    let mut usage: BTreeMap<&str, SourceUsage> = BTreeMap::new();
    for (counts, is_today) in [(&today, true), (&month, false)] {
        for count in counts {
            let entry = usage.entry(&count.source).or_insert_with(|| SourceUsage {
                source: count.source.clone(),
                ..SourceUsage::default()
            });
            if is_today {
                entry.today.add(count);
            } else {
                entry.month.add(count);
            }
        }
    }
    let mut usage: Vec<SourceUsage> = usage.into_values().collect();
    for source in &mut usage {
        let mut times = store
            .call_durations(&source.source, "ok", day_start, LATENCY_SAMPLES)
            .await?;
        times.sort_unstable();
        source.latency_ms = percentiles(&times);
    }
    Ok(usage)
}

/// p50, p95 and p99 of sorted samples (nearest rank).
fn percentiles(sorted: &[i64]) -> Option<(i64, i64, i64)> {
    if sorted.is_empty() {
        return None;
    }
    let rank = |p: f64| {
        let index = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[index.clamp(1, sorted.len()) - 1]
    };
    Some((rank(50.0), rank(95.0), rank(99.0)))
}

/// Credits spent today and this month (UTC) per source, from the history: what the budgets of
/// sources built now start from, so limits hold across processes.
pub async fn spent_by_source(store: &dyn Store) -> Result<HashMap<String, (u64, u64)>, StoreError> {
    let (_, today, month) = period_counts(store).await?;
    let mut spent: HashMap<String, (u64, u64)> = HashMap::new();
    for count in &today {
        spent.entry(count.source.clone()).or_default().0 += count.credits;
    }
    for count in &month {
        spent.entry(count.source.clone()).or_default().1 += count.credits;
    }
    Ok(spent)
}

/// A budget event of one source, as the history and the `budget-alert` rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetNotice {
    pub budget: BudgetContext,
    /// The period it belongs to (`2026-11-24` for a day, `2026-11` for a month), so rules act on
    /// it once per period whichever process sees it.
    pub period_key: String,
}

impl BudgetNotice {
    pub fn new(source: &str, event: &BudgetEvent, today: Day) -> BudgetNotice {
        let (year, month, day) = today;
        let day_key = format!("{year:04}-{month:02}-{day:02}");
        let month_key = format!("{year:04}-{month:02}");
        let key = |period: &Period| match period {
            Period::Day => day_key.clone(),
            Period::Month => month_key.clone(),
        };
        let of_period = |event: &str, period: &Period, used: u64, limit: u64, message: String| {
            let budget = BudgetContext {
                source: source.to_owned(),
                event: event.into(),
                period: period.as_str().into(),
                used: used as i64,
                limit: limit as i64,
                percent: (used * 100).checked_div(limit).unwrap_or(0) as i64,
                message,
            };
            (budget, key(period))
        };
        let (budget, period_key) = match event {
            BudgetEvent::Alert {
                period,
                used,
                limit,
                ..
            } => {
                let percent = (used * 100).checked_div(*limit).unwrap_or(0);
                let message = format!(
                    "{} credits at {percent} % ({used} of {limit})",
                    period.as_str()
                );
                of_period("alert", period, *used, *limit, message)
            }
            BudgetEvent::Exhausted {
                period,
                used,
                limit,
            } => {
                let message = format!(
                    "{} credits spent ({used} of {limit}); calls wait for the next period",
                    period.as_str()
                );
                of_period("exhausted", period, *used, *limit, message)
            }
            BudgetEvent::RefusedByService { message } => (
                BudgetContext {
                    source: source.to_owned(),
                    event: "refused".into(),
                    message: format!(
                        "the service refused for lack of credits ({message}); calls stop until tomorrow (UTC)"
                    ),
                    ..BudgetContext::default()
                },
                day_key.clone(),
            ),
        };
        BudgetNotice { budget, period_key }
    }

    /// The history entry: kind `budget`, the event as its outcome.
    pub fn history_event(&self) -> Event {
        Event {
            id: 0,
            at: now_ms(),
            kind: "budget".into(),
            stix_id: None,
            indicator: None,
            rule: None,
            action: None,
            outcome: self.budget.event.clone(),
            origin: format!("source:{}", self.budget.source),
            duration_ms: None,
            credits: 0,
            detail: json!({
                "period": self.budget.period,
                "used": self.budget.used,
                "limit": self.budget.limit,
                "percent": self.budget.percent,
                "message": self.budget.message,
            }),
        }
    }
}

/// The budget events every source of `engine` raised since the last call.
pub fn take_budget_notices(engine: &Engine) -> Vec<BudgetNotice> {
    let today = today_utc();
    engine
        .sources()
        .iter()
        .flat_map(|source| {
            source
                .take_budget_events()
                .into_iter()
                .map(move |event| BudgetNotice::new(source.name(), &event, today))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_start_at_utc_midnight_and_the_first_of_the_month() {
        // 2026-11-24 13:45:00 UTC.
        let now = days_from_civil((2026, 11, 24)) * DAY_MS + 49_500_000;
        let (day, month) = period_starts(now);
        assert_eq!(day, days_from_civil((2026, 11, 24)) * DAY_MS);
        assert_eq!(month, days_from_civil((2026, 11, 1)) * DAY_MS);
    }

    #[test]
    fn budget_events_say_what_happened_and_to_which_period() {
        let alert = BudgetNotice::new(
            "criminalip",
            &BudgetEvent::Alert {
                period: Period::Month,
                used: 801,
                limit: 1000,
                percent: 80,
            },
            (2026, 11, 24),
        );
        assert_eq!(alert.period_key, "2026-11");
        assert_eq!(alert.budget.percent, 80);
        assert_eq!(
            alert.budget.message,
            "monthly credits at 80 % (801 of 1000)"
        );
        let refused = BudgetNotice::new(
            "criminalip",
            &BudgetEvent::RefusedByService {
                message: "limit exceeded".into(),
            },
            (2026, 1, 2),
        );
        assert_eq!(refused.period_key, "2026-01-02");
        assert_eq!(refused.budget.event, "refused");
        let entry = refused.history_event();
        assert_eq!(
            (entry.kind.as_str(), entry.outcome.as_str()),
            ("budget", "refused")
        );
        assert_eq!(entry.origin, "source:criminalip");
        assert!(entry.stix_id.is_none());
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<i64> = (1..=100).collect();
        assert_eq!(percentiles(&samples), Some((50, 95, 99)));
        assert_eq!(percentiles(&[7]), Some((7, 7, 7)));
        assert_eq!(percentiles(&[]), None);
    }

    #[test]
    fn cache_hits_count_answers_not_failures() {
        let usage = PeriodUsage {
            paid: 3,
            cached: 1,
            failed: 4,
            credits: 3,
        };
        assert_eq!(usage.cache_hit_percent(), Some(25.0));
        assert_eq!(usage.error_percent(), Some(50.0));
    }
}
