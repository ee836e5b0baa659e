//! The one limiter, one budget and one cache every call to a paid source goes through
//! (DESIGN.md invariant 2).
//!
//! - [`RateWindow`] allows at most N requests in any sliding window (e.g. 5 per second). A window
//!   log is used instead of a token bucket because the promise is about *any* window — what the
//!   vendor (and the sandbox's request log) counts — and a GCRA bucket admits a burst at the edge
//!   of a window. A small margin absorbs loopback jitter between sending and arrival.
//! - a [`RateLedger`] in the store, when one is given, holds the same window for every process
//!   that calls with the same key; the local window stays in front of it, so a process asks
//!   the store only for places its own window allows, and one task at a time asks. The store
//!   stamps a place when it decides, before its transaction ends, so a place counts only if the
//!   answer came back within the margin of asking: then any R+1 calls, from any process, leave
//!   more than the window apart. A place granted later than that is left in the window unused
//!   (it costs capacity, never the limit) and another is taken; should that one be late too,
//!   the call goes ahead with a warning that the store answers too slowly for the margin.
//!   Should the store fail, the call goes ahead on the local window alone and the failure is
//!   logged;
//! - a semaphore caps the requests in flight (non-Enterprise Criminal IP keys allow one);
//! - [`Budget`] counts credits per UTC day and month, raises an alert once per period when usage
//!   crosses the threshold, and refuses to spend past the limit;
//! - [`AnswerCache`] keeps answers per (key fingerprint, call, indicator, parameters) for a TTL
//!   chosen per answer, and collapses identical calls already in flight into one;
//! - [`CallMetrics`] counts calls, outcomes, retries, cache hits, credits and latencies.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::RateLedger;

/// Extra spacing added to every rate window, so that arrival jitter never lets the far end see
/// more than the limit in one of its windows.
const WINDOW_MARGIN: Duration = Duration::from_millis(25);

/// At most `max` requests in any window of `window`.
#[derive(Debug)]
pub struct RateWindow {
    max: usize,
    window: Duration,
    sent: Mutex<VecDeque<Instant>>,
}

impl RateWindow {
    pub fn new(max: u32, window: Duration) -> RateWindow {
        RateWindow {
            max: max.max(1) as usize,
            window: window + WINDOW_MARGIN,
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// Waits until a request may be sent, and records it as sent.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut sent = self.sent.lock().expect("rate window lock");
                let now = Instant::now();
                while sent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.window)
                {
                    sent.pop_front();
                }
                if sent.len() < self.max {
                    sent.push_back(now);
                    return;
                }
                self.window - now.duration_since(*sent.front().expect("window is full"))
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Waits until the shared window has a place for a call sent now (see the module
    /// documentation for why a late answer does not count).
    async fn acquire_shared(&self, shared: &SharedWindow) {
        let window_ms = i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX);
        let max = u32::try_from(self.max).unwrap_or(u32::MAX);
        let _turn = shared.turn.lock().await;
        let mut late = 0;
        loop {
            let asked = Instant::now();
            match shared.ledger.take(&shared.scope, max, window_ms).await {
                Ok(None) => {
                    let took = asked.elapsed();
                    if took <= WINDOW_MARGIN {
                        return;
                    }
                    late += 1;
                    if late >= LATE_PLACES {
                        tracing::warn!(
                            scope = %shared.scope,
                            took_ms = took.as_millis() as u64,
                            margin_ms = WINDOW_MARGIN.as_millis() as u64,
                            "the store's rate ledger answered later than the window's margin again; this call goes ahead, and may arrive closer to others than the limit allows"
                        );
                        return;
                    }
                }
                Ok(Some(wait_ms)) => {
                    let wait = Duration::from_millis(wait_ms.clamp(1, window_ms) as u64);
                    tokio::time::sleep(wait).await;
                }
                Err(error) => {
                    tracing::warn!(scope = %shared.scope, %error, "the store's rate ledger failed; this call keeps to this process's rate window only");
                    return;
                }
            }
        }
    }
}

/// Places granted later than the margin after asking that a call gives up before it goes ahead.
const LATE_PLACES: u32 = 2;

/// The rate window shared through the store, as one scope of its ledger.
struct SharedWindow {
    ledger: Arc<dyn RateLedger>,
    scope: String,
    /// One task of this process asks the ledger at a time, in turn.
    turn: tokio::sync::Mutex<()>,
}

/// The limiter: a concurrency cap, a rate window, and the rate window shared through the store
/// when there is one, taken in that order for every request.
pub struct Limiter {
    slots: Semaphore,
    rate: RateWindow,
    shared: OnceLock<SharedWindow>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("slots", &self.slots)
            .field("rate", &self.rate)
            .field("shared", &self.shared.get().map(|shared| &shared.scope))
            .finish()
    }
}

impl Limiter {
    pub fn new(concurrency: u32, max_requests: u32, per: Duration) -> Limiter {
        Limiter {
            slots: Semaphore::new(concurrency.max(1) as usize),
            rate: RateWindow::new(max_requests, per),
            shared: OnceLock::new(),
        }
    }

    /// Shares the rate window, as `scope`, with every process using `ledger`; the first call
    /// wins.
    pub fn share(&self, ledger: Arc<dyn RateLedger>, scope: String) {
        let _ = self.shared.set(SharedWindow {
            ledger,
            scope,
            turn: tokio::sync::Mutex::new(()),
        });
    }

    /// Waits for a free slot and a rate allowance; the slot is held until the permit is dropped.
    pub async fn admit(&self) -> SemaphorePermit<'_> {
        let permit = self
            .slots
            .acquire()
            .await
            .expect("the semaphore is never closed");
        self.rate.acquire().await;
        if let Some(shared) = self.shared.get() {
            self.rate.acquire_shared(shared).await;
        }
        permit
    }
}

/// A calendar period credits are counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    Day,
    Month,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "daily",
            Period::Month => "monthly",
        }
    }
}

/// Something a budget wants people (and rules) to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetEvent {
    /// Usage crossed the alert threshold.
    Alert {
        period: Period,
        used: u64,
        limit: u64,
        percent: u8,
    },
    /// The limit is reached: no more calls this period.
    Exhausted {
        period: Period,
        used: u64,
        limit: u64,
    },
    /// The service itself said the credits are gone ("limit exceeded").
    RefusedByService { message: String },
}

/// Credit limits; `None` means no limit for that period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetLimits {
    pub daily: Option<u64>,
    pub monthly: Option<u64>,
    /// Percentage of a limit at which an alert is raised (80 by default).
    pub alert_percent: u8,
}

impl Default for BudgetLimits {
    fn default() -> BudgetLimits {
        BudgetLimits {
            daily: None,
            monthly: None,
            alert_percent: 80,
        }
    }
}

/// A UTC calendar day as (year, month, day).
pub type Day = scry_core::calendar::Date;

#[derive(Debug, Default)]
struct BudgetState {
    day: Option<Day>,
    used_day: u64,
    used_month: u64,
    alerted_day: bool,
    alerted_month: bool,
    /// The service refused for lack of credits on this day: no calls until the next one.
    refused_on: Option<Day>,
}

/// Credits spent against daily and monthly limits.
#[derive(Debug)]
pub struct Budget {
    limits: BudgetLimits,
    state: Mutex<BudgetState>,
    events: Mutex<EventLog>,
}

/// Every budget event raised, and how many of them were already handed on.
#[derive(Debug, Default)]
struct EventLog {
    all: Vec<BudgetEvent>,
    taken: usize,
}

/// The budget refused to spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} credit budget spent", period.as_str())]
pub struct BudgetSpent {
    pub period: Period,
}

impl Budget {
    pub fn new(limits: BudgetLimits) -> Budget {
        Budget {
            limits,
            state: Mutex::new(BudgetState::default()),
            events: Mutex::new(EventLog::default()),
        }
    }

    pub fn limits(&self) -> BudgetLimits {
        self.limits
    }

    /// Spends `credits` on `today` if every limit allows it.
    pub fn try_spend(&self, credits: u64, today: Day) -> Result<(), BudgetSpent> {
        let mut guard = self.state.lock().expect("budget lock");
        let state = &mut *guard;
        roll_over(state, today);
        if state.refused_on == Some(today) {
            return Err(BudgetSpent {
                period: Period::Day,
            });
        }
        for (period, used, limit) in [
            (Period::Day, state.used_day, self.limits.daily),
            (Period::Month, state.used_month, self.limits.monthly),
        ] {
            if let Some(limit) = limit
                && used + credits > limit
            {
                return Err(BudgetSpent { period });
            }
        }
        state.used_day += credits;
        state.used_month += credits;
        let mut events = Vec::new();
        for (period, used, limit, alerted) in [
            (
                Period::Day,
                state.used_day,
                self.limits.daily,
                &mut state.alerted_day,
            ),
            (
                Period::Month,
                state.used_month,
                self.limits.monthly,
                &mut state.alerted_month,
            ),
        ] {
            let Some(limit) = limit else { continue };
            if !*alerted && used * 100 >= limit * u64::from(self.limits.alert_percent) {
                *alerted = true;
                events.push(BudgetEvent::Alert {
                    period,
                    used,
                    limit,
                    percent: self.limits.alert_percent,
                });
            }
            if used == limit {
                events.push(BudgetEvent::Exhausted {
                    period,
                    used,
                    limit,
                });
            }
        }
        drop(guard);
        self.emit(events);
        Ok(())
    }

    /// Counts credits spent on `today` and in its month by earlier runs, so limits hold across
    /// processes. An alert whose threshold was already crossed is not raised again.
    pub fn seed(&self, today: Day, used_day: u64, used_month: u64) {
        let mut guard = self.state.lock().expect("budget lock");
        let state = &mut *guard;
        roll_over(state, today);
        state.used_day = state.used_day.max(used_day);
        state.used_month = state.used_month.max(used_month).max(state.used_day);
        let crossed = |used: u64, limit: Option<u64>| {
            limit.is_some_and(|l| used * 100 >= l * u64::from(self.limits.alert_percent))
        };
        state.alerted_day |= crossed(state.used_day, self.limits.daily);
        state.alerted_month |= crossed(state.used_month, self.limits.monthly);
    }

    /// Gives back credits reserved for a call that did not happen or was not charged.
    pub fn refund(&self, credits: u64) {
        let mut state = self.state.lock().expect("budget lock");
        state.used_day = state.used_day.saturating_sub(credits);
        state.used_month = state.used_month.saturating_sub(credits);
    }

    /// Records that the service refused for lack of credits: no more calls today.
    pub fn refused_by_service(&self, today: Day, message: &str) {
        let mut state = self.state.lock().expect("budget lock");
        roll_over(&mut state, today);
        let first = state.refused_on != Some(today);
        state.refused_on = Some(today);
        drop(state);
        if first {
            self.emit(vec![BudgetEvent::RefusedByService {
                message: message.to_owned(),
            }]);
        }
    }

    /// True when the service refused for lack of credits on `today`.
    pub fn refused_on(&self, today: Day) -> bool {
        self.state.lock().expect("budget lock").refused_on == Some(today)
    }

    /// Credits used today and this month.
    pub fn used(&self) -> (u64, u64) {
        let state = self.state.lock().expect("budget lock");
        (state.used_day, state.used_month)
    }

    /// Every event raised so far, oldest first.
    pub fn events(&self) -> Vec<BudgetEvent> {
        self.events.lock().expect("events lock").all.clone()
    }

    /// The events raised since the last call, oldest first: each is handed on once (to the
    /// history and the `budget-alert` rules).
    pub fn take_new_events(&self) -> Vec<BudgetEvent> {
        let mut log = self.events.lock().expect("events lock");
        let new = log.all[log.taken..].to_vec();
        log.taken = log.all.len();
        new
    }

    fn emit(&self, events: Vec<BudgetEvent>) {
        for event in &events {
            match event {
                BudgetEvent::Alert {
                    period,
                    used,
                    limit,
                    percent,
                } => {
                    tracing::warn!(
                        period = period.as_str(),
                        used,
                        limit,
                        "credit usage reached {percent} % of the {} budget",
                        period.as_str()
                    );
                }
                BudgetEvent::Exhausted {
                    period,
                    used,
                    limit,
                } => {
                    tracing::warn!(
                        period = period.as_str(),
                        used,
                        limit,
                        "{} credit budget spent; further calls are skipped until it renews",
                        period.as_str()
                    );
                }
                BudgetEvent::RefusedByService { message } => {
                    tracing::error!(%message, "the service refused for lack of credits; calls stop until tomorrow (UTC)");
                }
            }
        }
        self.events.lock().expect("events lock").all.extend(events);
    }
}

fn roll_over(state: &mut BudgetState, today: Day) {
    match state.day {
        Some(day) if day == today => {}
        Some(day) => {
            state.used_day = 0;
            state.alerted_day = false;
            if (day.0, day.1) != (today.0, today.1) {
                state.used_month = 0;
                state.alerted_month = false;
            }
            state.day = Some(today);
        }
        None => state.day = Some(today),
    }
}

/// A cached answer, how long it stays fresh, and what it weighs against the cache's capacity.
#[derive(Debug)]
pub struct Cached<T> {
    pub value: Arc<T>,
    pub ttl: Duration,
    pub weight: u32,
}

impl<T> Clone for Cached<T> {
    fn clone(&self) -> Cached<T> {
        Cached {
            value: Arc::clone(&self.value),
            ttl: self.ttl,
            weight: self.weight,
        }
    }
}

struct PerEntryTtl;

impl<T> moka::Expiry<String, Cached<T>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Cached<T>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Answers by (key fingerprint, call, indicator, parameters), each with its own TTL, bounded by
/// total weight (for answers: their size), so a long run's memory stays bounded; what it evicts is
/// still in the store's answer archive and is reloaded from there, not bought again.
#[derive(Clone)]
pub struct AnswerCache<T: Send + Sync + 'static> {
    inner: moka::future::Cache<String, Cached<T>>,
    weigh: fn(&T) -> u32,
}

impl<T: Send + Sync + 'static> AnswerCache<T> {
    /// A cache holding at most `capacity` in total of what `weigh` says each answer weighs.
    pub fn new(capacity: u64, weigh: fn(&T) -> u32) -> AnswerCache<T> {
        AnswerCache {
            inner: moka::future::Cache::builder()
                .max_capacity(capacity)
                .weigher(|_key: &String, cached: &Cached<T>| cached.weight)
                .expire_after(PerEntryTtl)
                .build(),
            weigh,
        }
    }

    /// The cache key of a call.
    pub fn key(key_fingerprint: &str, call: &str, indicator: &str, parameters: &str) -> String {
        format!("{key_fingerprint}\u{1f}{call}\u{1f}{indicator}\u{1f}{parameters}")
    }

    pub async fn get(&self, key: &str) -> Option<Arc<T>> {
        self.inner.get(key).await.map(|c| c.value)
    }

    pub async fn insert(&self, key: String, value: Arc<T>, ttl: Duration) {
        let weight = (self.weigh)(&value);
        self.inner.insert(key, Cached { value, ttl, weight }).await;
    }

    /// Returns the cached answer, or runs `fetch` once for all concurrent callers of the same key
    /// and caches its answer. The flag says whether the answer came from the cache. Errors are not
    /// cached.
    pub async fn get_or_fetch<E, F>(&self, key: String, fetch: F) -> Result<(Arc<T>, bool), Arc<E>>
    where
        E: Send + Sync + 'static,
        F: Future<Output = Result<(T, Duration), E>>,
    {
        if let Some(hit) = self.get(&key).await {
            return Ok((hit, true));
        }
        let fetched = std::sync::atomic::AtomicBool::new(false);
        let entry = self
            .inner
            .try_get_with(key, async {
                fetched.store(true, Ordering::Relaxed);
                fetch.await.map(|(value, ttl)| Cached {
                    weight: (self.weigh)(&value),
                    value: Arc::new(value),
                    ttl,
                })
            })
            .await?;
        Ok((entry.value, !fetched.load(Ordering::Relaxed)))
    }
}

/// How one HTTP request to a vendor ended, by kind, for the operations figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttemptOutcome {
    Ok,
    /// 429, or a rate-limit answer in the body.
    RateLimited,
    /// 5xx.
    ServerError,
    Timeout,
    /// The connection was refused or broke.
    Refused,
    /// The account's credits are used up ("limit exceeded").
    LimitExceeded,
    /// Any other answer that is not a success (rejected key or indicator, malformed body, 4xx).
    Other,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Ok => "ok",
            AttemptOutcome::RateLimited => "429",
            AttemptOutcome::ServerError => "5xx",
            AttemptOutcome::Timeout => "timeout",
            AttemptOutcome::Refused => "refused",
            AttemptOutcome::LimitExceeded => "limit",
            AttemptOutcome::Other => "other",
        }
    }
}

/// One HTTP request a source sent: how long the vendor took to answer it, how it ended, and
/// whether it repeated a failed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub latency_ms: u64,
    pub outcome: AttemptOutcome,
    pub retry: bool,
}

/// Counters and latencies of the calls a source made.
#[derive(Debug, Default)]
pub struct CallMetrics {
    pub requests: AtomicU64,
    pub ok: AtomicU64,
    pub errors: AtomicU64,
    pub retries: AtomicU64,
    pub cache_hits: AtomicU64,
    pub credits: AtomicU64,
    latencies_ms: Mutex<VecDeque<u32>>,
    /// Attempts not yet handed on to the history (bounded; the oldest go first).
    attempts: Mutex<VecDeque<Attempt>>,
}

/// Attempts kept for the history between two saves at most.
const ATTEMPTS_KEPT: usize = 100_000;

/// A point-in-time copy of [`CallMetrics`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub retries: u64,
    pub cache_hits: u64,
    pub credits: u64,
    pub latency_p50_ms: Option<u32>,
    pub latency_p95_ms: Option<u32>,
    pub latency_p99_ms: Option<u32>,
}

/// Latencies kept for percentiles (the most recent ones).
const LATENCY_SAMPLES: usize = 100_000;

impl CallMetrics {
    /// Records one HTTP request: its latency for the percentiles, and the attempt for the history.
    pub fn record_attempt(&self, latency: Duration, outcome: AttemptOutcome, retry: bool) {
        self.record_latency(latency);
        let mut attempts = self.attempts.lock().expect("metrics lock");
        if attempts.len() == ATTEMPTS_KEPT {
            attempts.pop_front();
        }
        attempts.push_back(Attempt {
            latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            outcome,
            retry,
        });
    }

    /// The attempts recorded since the last call, oldest first.
    pub fn take_attempts(&self) -> Vec<Attempt> {
        self.attempts
            .lock()
            .expect("metrics lock")
            .drain(..)
            .collect()
    }

    pub fn record_latency(&self, latency: Duration) {
        let mut samples = self.latencies_ms.lock().expect("metrics lock");
        if samples.len() == LATENCY_SAMPLES {
            samples.pop_front();
        }
        samples.push_back(u32::try_from(latency.as_millis()).unwrap_or(u32::MAX));
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let mut samples: Vec<u32> = self
            .latencies_ms
            .lock()
            .expect("metrics lock")
            .iter()
            .copied()
            .collect();
        samples.sort_unstable();
        let percentile = |p: usize| {
            (!samples.is_empty()).then(|| samples[(samples.len() * p / 100).min(samples.len() - 1)])
        };
        MetricsSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            ok: self.ok.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            credits: self.credits.load(Ordering::Relaxed),
            latency_p50_ms: percentile(50),
            latency_p95_ms: percentile(95),
            latency_p99_ms: percentile(99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ledger that grants every place, answering after the delays it is given in turn (then at
    /// once), and counts the places it gave and the most asks it had at one time.
    #[derive(Default)]
    struct ScriptedLedger {
        delays: Mutex<VecDeque<Duration>>,
        fail: bool,
        granted: AtomicU64,
        asking: AtomicU64,
        most_asking: AtomicU64,
    }

    impl RateLedger for ScriptedLedger {
        fn take<'a>(
            &'a self,
            _scope: &'a str,
            _max: u32,
            _window_ms: i64,
        ) -> crate::SourceFuture<'a, Result<Option<i64>, String>> {
            Box::pin(async move {
                let now = self.asking.fetch_add(1, Ordering::SeqCst) + 1;
                self.most_asking.fetch_max(now, Ordering::SeqCst);
                let delay = self.delays.lock().expect("delays").pop_front();
                tokio::time::sleep(delay.unwrap_or(Duration::ZERO)).await;
                self.asking.fetch_sub(1, Ordering::SeqCst);
                if self.fail {
                    return Err("database is locked".into());
                }
                self.granted.fetch_add(1, Ordering::SeqCst);
                Ok(None)
            })
        }
    }

    fn limiter_with(ledger: &Arc<ScriptedLedger>) -> Limiter {
        let limiter = Limiter::new(8, 1_000, Duration::from_secs(1));
        limiter.share(
            Arc::clone(ledger) as Arc<dyn RateLedger>,
            "criminalip:test".into(),
        );
        limiter
    }

    #[tokio::test]
    async fn a_place_granted_later_than_the_margin_is_given_up_for_another() {
        let late = WINDOW_MARGIN * 3;
        let ledger = Arc::new(ScriptedLedger {
            delays: Mutex::new(VecDeque::from([late])),
            ..ScriptedLedger::default()
        });
        let limiter = limiter_with(&ledger);
        drop(limiter.admit().await);
        assert_eq!(
            ledger.granted.load(Ordering::SeqCst),
            2,
            "the late place is left unused"
        );
        drop(limiter.admit().await);
        assert_eq!(
            ledger.granted.load(Ordering::SeqCst),
            3,
            "a prompt place is used"
        );

        // A ledger that is always late costs a call two places, then lets it go.
        let ledger = Arc::new(ScriptedLedger {
            delays: Mutex::new(VecDeque::from([late; 8])),
            ..ScriptedLedger::default()
        });
        let limiter = limiter_with(&ledger);
        drop(limiter.admit().await);
        assert_eq!(
            ledger.granted.load(Ordering::SeqCst),
            u64::from(LATE_PLACES)
        );
    }

    #[tokio::test]
    async fn one_task_at_a_time_asks_the_ledger() {
        let ledger = Arc::new(ScriptedLedger {
            delays: Mutex::new(VecDeque::from([Duration::from_millis(5); 16])),
            ..ScriptedLedger::default()
        });
        let limiter = Arc::new(limiter_with(&ledger));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let limiter = Arc::clone(&limiter);
                tokio::spawn(async move {
                    drop(limiter.admit().await);
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        assert_eq!(ledger.most_asking.load(Ordering::SeqCst), 1);
        assert_eq!(ledger.granted.load(Ordering::SeqCst), 16);
    }

    #[tokio::test]
    async fn a_failing_ledger_leaves_the_local_window() {
        let ledger = Arc::new(ScriptedLedger {
            fail: true,
            ..ScriptedLedger::default()
        });
        let limiter = limiter_with(&ledger);
        drop(limiter.admit().await);
        assert_eq!(ledger.granted.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn earlier_usage_counts_against_the_limits() {
        let budget = Budget::new(BudgetLimits {
            daily: Some(10),
            monthly: Some(100),
            alert_percent: 80,
        });
        let today = (2026, 11, 24);
        budget.seed(today, 9, 50);
        assert_eq!(budget.used(), (9, 50));
        assert!(budget.try_spend(1, today).is_ok());
        assert_eq!(
            budget.try_spend(1, today),
            Err(BudgetSpent {
                period: Period::Day
            }),
            "the earlier run's credits count"
        );
        assert!(
            !budget
                .events()
                .iter()
                .any(|e| matches!(e, BudgetEvent::Alert { .. })),
            "the daily alert was due before this process: not raised again"
        );
        // The next day starts from zero; the month goes on.
        assert!(budget.try_spend(1, (2026, 11, 25)).is_ok());
        assert_eq!(budget.used(), (1, 52));
    }

    #[test]
    fn budget_alerts_once_at_the_threshold_and_stops_at_the_limit() {
        let budget = Budget::new(BudgetLimits {
            daily: Some(10),
            monthly: Some(100),
            alert_percent: 80,
        });
        let day = (2026, 11, 23);
        for _ in 0..7 {
            budget.try_spend(1, day).expect("under the limit");
        }
        assert!(budget.events().is_empty());
        budget.try_spend(1, day).expect("8 of 10");
        assert_eq!(
            budget.events(),
            [BudgetEvent::Alert {
                period: Period::Day,
                used: 8,
                limit: 10,
                percent: 80
            }]
        );
        assert_eq!(budget.take_new_events().len(), 1, "the alert is handed on");
        assert!(budget.take_new_events().is_empty(), "once");
        budget.try_spend(1, day).expect("9");
        budget.try_spend(1, day).expect("10");
        assert_eq!(
            budget.take_new_events(),
            [BudgetEvent::Exhausted {
                period: Period::Day,
                used: 10,
                limit: 10
            }],
            "only what is new since"
        );
        assert_eq!(
            budget.try_spend(1, day),
            Err(BudgetSpent {
                period: Period::Day
            })
        );
        assert_eq!(
            budget.events().len(),
            2,
            "one alert, one exhausted: {:?}",
            budget.events()
        );
        assert_eq!(budget.used(), (10, 10));
        budget.try_spend(1, (2026, 11, 24)).expect("a new day");
        assert_eq!(budget.used(), (1, 11));
        budget.try_spend(1, (2026, 12, 1)).expect("a new month");
        assert_eq!(budget.used(), (1, 1));
    }

    #[test]
    fn a_service_refusal_stops_spending_for_the_day() {
        let budget = Budget::new(BudgetLimits::default());
        budget.refused_by_service((2026, 1, 1), "limit exceeded");
        budget.refused_by_service((2026, 1, 1), "limit exceeded");
        assert!(budget.try_spend(1, (2026, 1, 1)).is_err());
        assert!(budget.try_spend(1, (2026, 1, 2)).is_ok());
        assert_eq!(budget.events().len(), 1);
    }

    #[tokio::test]
    async fn the_rate_window_never_admits_more_than_max_in_any_window() {
        let window = RateWindow::new(5, Duration::from_millis(200));
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..15 {
            window.acquire().await;
            times.push(start.elapsed());
        }
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .take_while(|u| **u - *t < Duration::from_millis(200))
                .count();
            assert!(
                in_window <= 5,
                "{in_window} requests within 200 ms of {t:?}: {times:?}"
            );
        }
        assert!(
            times[14] >= Duration::from_millis(400),
            "15 requests at 5 per 200 ms take at least 400 ms"
        );
    }

    #[tokio::test]
    async fn identical_calls_in_flight_are_fetched_once() {
        let cache: AnswerCache<u32> = AnswerCache::new(100, |_| 1);
        let fetches = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::new();
        for _ in 0..8 {
            let cache = cache.clone();
            let fetches = Arc::clone(&fetches);
            handles.push(tokio::spawn(async move {
                cache
                    .get_or_fetch::<(), _>("k".into(), async {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok((7, Duration::from_secs(60)))
                    })
                    .await
                    .expect("fetch succeeds")
            }));
        }
        let mut from_cache = 0;
        for handle in handles {
            let (value, cached) = handle.await.expect("task");
            assert_eq!(*value, 7);
            from_cache += u32::from(cached);
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        assert_eq!(
            from_cache, 7,
            "every caller but the one that fetched got a cached answer"
        );
    }
}
