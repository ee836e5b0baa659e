//! What the sources cost and how they behave, from the automation history: the seeds'
//! enrichment performance report (`scry sources status`), and the credits earlier runs spent, so
//! budgets hold across processes and workers rather than starting from zero in each. Budget
//! events (alert share crossed, limit reached, refused by the service) become history entries and
//! `budget-alert` rule input here.

use std::collections::{BTreeMap, HashMap};

use scry_core::calendar::{civil_from_days, days_from_civil};
use scry_rules::BudgetContext;
use scry_sources::clock::{Clock, SystemClock};
use scry_sources::guard::{BudgetEvent, Day, Period};
use scry_store::{AttemptCount, CallCount, Event, Store, StoreError};
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
    /// Of the credits, those of each account (key at a service address; see
    /// `scry_sources::account`), which is what a budget limits: credits spent against
    /// `scry sandbox` and against the service are two accounts. Calls recorded before accounts
    /// were are under [`UNRECORDED_ACCOUNT`].
    pub credits_by_account: BTreeMap<String, u64>,
    /// HTTP requests sent (every attempt, retries and key checks included).
    pub attempts: u64,
    /// Of them, requests that repeated a failed one.
    pub retries: u64,
    /// Requests that did not succeed, by kind: `429`, `5xx`, `timeout`, `refused`, `limit`,
    /// `other`.
    pub errors: BTreeMap<String, u64>,
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

    /// Share of HTTP requests that did not succeed, in percent: a retried error counts.
    pub fn error_percent(&self) -> Option<f64> {
        let errors: u64 = self.errors.values().sum();
        (self.attempts > 0).then(|| errors as f64 * 100.0 / self.attempts as f64)
    }

    /// The period as the API, `scry sources status --format json` and the workbench show it.
    pub fn summary(&self, credit_limit: Option<u64>) -> serde_json::Value {
        json!({
            "calls": self.calls(), "paid": self.paid, "cached": self.cached, "failed": self.failed,
            "cache_hit_percent": self.cache_hit_percent(),
            "requests": self.attempts, "retries": self.retries, "errors": self.errors,
            "error_percent": self.error_percent(),
            "credits": self.credits, "credit_limit": credit_limit,
            "credits_by_account": self.credits_by_account,
        })
    }

    fn add_attempts(&mut self, count: &AttemptCount) {
        self.attempts += count.attempts;
        self.retries += count.retries;
        if count.outcome != "ok" {
            *self.errors.entry(count.outcome.clone()).or_default() += count.attempts;
        }
    }

    fn add(&mut self, count: &CallCount) {
        match count.outcome.as_str() {
            "ok" => self.paid += count.calls,
            "cached" => self.cached += count.calls,
            _ => self.failed += count.calls,
        }
        self.credits += count.credits;
        if count.credits > 0 {
            *self
                .credits_by_account
                .entry(
                    count
                        .account
                        .clone()
                        .unwrap_or_else(|| UNRECORDED_ACCOUNT.to_owned()),
                )
                .or_default() += count.credits;
        }
    }
}

/// The account of calls recorded before the history named accounts.
pub const UNRECORDED_ACCOUNT: &str = "(not recorded)";

/// One source's report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceUsage {
    pub source: String,
    pub today: PeriodUsage,
    pub month: PeriodUsage,
    /// Latency of today's HTTP requests to the vendor, in ms: p50, p95, p99 (`None` without
    /// any): the vendor's time per request, not an indicator's time in the queue.
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

/// Today's and this month's calls and HTTP requests per source, with the latency percentiles
/// of today's requests.
pub async fn source_usage(store: &dyn Store) -> Result<Vec<SourceUsage>, StoreError> {
    let (day_start, today, month) = period_counts(store).await?;
    let (_, month_start) = period_starts(now_ms());
    let attempts_today = store.attempt_counts(day_start).await?;
    let attempts_month = store.attempt_counts(month_start).await?;
    let mut usage: BTreeMap<String, SourceUsage> = BTreeMap::new();
    fn entry<'u>(
        usage: &'u mut BTreeMap<String, SourceUsage>,
        source: &str,
    ) -> &'u mut SourceUsage {
        usage
            .entry(source.to_owned())
            .or_insert_with(|| SourceUsage {
                source: source.to_owned(),
                ..SourceUsage::default()
            })
    }
    for count in &today {
        entry(&mut usage, &count.source).today.add(count);
    }
    for count in &month {
        entry(&mut usage, &count.source).month.add(count);
    }
    for count in &attempts_today {
        entry(&mut usage, &count.source).today.add_attempts(count);
    }
    for count in &attempts_month {
        entry(&mut usage, &count.source).month.add_attempts(count);
    }
    let mut usage: Vec<SourceUsage> = usage.into_values().collect();
    for source in &mut usage {
        let mut times = store
            .attempt_latencies(&source.source, day_start, LATENCY_SAMPLES)
            .await?;
        times.sort_unstable();
        source.latency_ms = percentiles(&times);
    }
    Ok(usage)
}

/// Every call and HTTP request the history holds, per source, in the order of their names: what
/// `/metrics` counts, so its counters only grow (until the history is pruned).
pub async fn lifetime_usage(store: &dyn Store) -> Result<Vec<(String, PeriodUsage)>, StoreError> {
    let mut usage: BTreeMap<String, PeriodUsage> = BTreeMap::new();
    for count in store.call_counts(0).await? {
        usage.entry(count.source.clone()).or_default().add(&count);
    }
    for count in store.attempt_counts(0).await? {
        usage
            .entry(count.source.clone())
            .or_default()
            .add_attempts(&count);
    }
    Ok(usage.into_iter().collect())
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

/// Credits spent today and this month (UTC) per account (a key at a service address), from the
/// history: what the budgets of sources built now start from, so limits hold across processes,
/// and credits spent against `scry sandbox` do not count against the real service. Calls recorded
/// before accounts were are keyed by their source's name and count against every account of it.
pub async fn spent_by_account(
    store: &dyn Store,
) -> Result<HashMap<String, (u64, u64)>, StoreError> {
    let (_, today, month) = period_counts(store).await?;
    let mut spent: HashMap<String, (u64, u64)> = HashMap::new();
    let key = |count: &CallCount| {
        count
            .account
            .clone()
            .unwrap_or_else(|| count.source.clone())
    };
    for count in &today {
        spent.entry(key(count)).or_default().0 += count.credits;
    }
    for count in &month {
        spent.entry(key(count)).or_default().1 += count.credits;
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
            account: None,
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

/// The HTTP requests every source of `engine` sent since the last call, as history entries of
/// kind `attempt`: origin `source:NAME`, the outcome by kind, the vendor's latency as the
/// duration, and `retry` as the action when the request repeated a failed one.
pub fn take_attempt_events(engine: &Engine) -> Vec<Event> {
    let at = now_ms();
    engine
        .sources()
        .iter()
        .flat_map(|source| {
            let origin = format!("source:{}", source.name());
            let account = source.account();
            source
                .take_attempts()
                .into_iter()
                .map(move |attempt| Event {
                    id: 0,
                    at,
                    kind: "attempt".into(),
                    stix_id: None,
                    indicator: None,
                    rule: None,
                    action: attempt.retry.then(|| "retry".to_owned()),
                    outcome: attempt.outcome.as_str().to_owned(),
                    origin: origin.clone(),
                    account: account.clone(),
                    duration_ms: Some(i64::try_from(attempt.latency_ms).unwrap_or(i64::MAX)),
                    credits: 0,
                    detail: serde_json::Value::Null,
                })
        })
        .collect()
}

/// The budget events every source of `engine` raised since the last call.
pub fn take_budget_notices(engine: &Engine) -> Vec<BudgetNotice> {
    let today = SystemClock.today();
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
    fn cache_hits_count_answers_not_failures_and_errors_count_requests() {
        let mut usage = PeriodUsage {
            paid: 3,
            cached: 1,
            failed: 0,
            credits: 3,
            ..PeriodUsage::default()
        };
        assert_eq!(usage.cache_hit_percent(), Some(25.0));
        assert_eq!(usage.error_percent(), None, "no request recorded");
        // Three calls answered after one 5xx each was retried: 6 requests, 3 of them errors.
        for (outcome, attempts, retries) in [("ok", 3, 3), ("5xx", 3, 0)] {
            usage.add_attempts(&AttemptCount {
                source: "criminalip".into(),
                outcome: outcome.into(),
                attempts,
                retries,
            });
        }
        assert_eq!(usage.error_percent(), Some(50.0));
        assert_eq!((usage.attempts, usage.retries), (6, 3));
        assert_eq!(usage.errors.get("5xx"), Some(&3));
    }
}
