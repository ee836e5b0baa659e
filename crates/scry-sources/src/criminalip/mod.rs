//! The Criminal IP source: exposure intelligence for IPs, domains and URLs.
//!
//! Calls, and what a plain enrichment spends:
//! - an IP costs one call, `GET /v1/asset/ip/report?full=true` (scores, flags, whois, ports,
//!   vulnerabilities, categories, IDS hits); `malicious-info`, `suspicious-info` and
//!   `privacy-threat` are opt-in (`ip_calls`), each one more call;
//! - a domain or URL reuses the newest earlier scan when it is younger than
//!   `domain_report_max_age_days` (`GET /v1/domain/reports`), and otherwise scans
//!   (`POST /v1/domain/scan`, then `GET /v1/domain/status/{id}` until done, then
//!   `GET /v2/domain/report/{id}`); a lite scan and the quick check are options. One scan runs at a
//!   time per account, as the service requires; polling sleeps without holding a request slot.
//!
//! Every request goes through the shared limiter, budget and cache ([`crate::guard`]); identical
//! calls already in flight are made once.

pub mod client;
pub mod map;
pub mod wire;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use scry_core::exposure::{Exposure, QuickCheck};
use scry_core::{Cleared, Destination, Observable, Tlp};
use serde_json::{Value, json};

use crate::clock::Clock;
use crate::guard::{AnswerCache, Budget, BudgetLimits, CallMetrics, Limiter, MetricsSnapshot};
use crate::secret::Secret;
use crate::{
    AnswerArchive, ArchiveKey, EnrichOptions, Finding, Source, SourceContext, SourceError,
    SourceFuture,
};
use client::{CipError, Client, Guards, Request, RetryPolicy};
use wire::{Account, DomainReport, EarlierScans, IpReport, Level, MaliciousInfo};

/// The default API address.
pub const DEFAULT_BASE_URL: &str = "https://api.criminalip.io";

/// Which domain scan to run when no recent report exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanKind {
    Full,
    Lite,
}

/// Optional IP calls, each costing one more call per IP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IpCalls {
    pub malicious_info: bool,
    pub suspicious_info: bool,
    pub privacy_threat: bool,
}

/// Everything the source needs, resolved from configuration.
#[derive(Debug, Clone)]
pub struct CriminalIpSettings {
    pub base_url: String,
    pub api_key: Secret,
    pub max_tlp: Tlp,
    /// At most `max_requests` requests per `per`.
    pub max_requests: u32,
    pub per: Duration,
    /// Requests in flight at once (1 for non-Enterprise keys).
    pub concurrency: u32,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub budget: BudgetLimits,
    /// How long answers stay fresh.
    pub cache_ttl: Duration,
    /// How long Dangerous and Critical answers stay fresh (re-checked sooner).
    pub cache_ttl_risky: Duration,
    pub domain_report_max_age_days: u32,
    pub ip_calls: IpCalls,
    pub domain_scan: ScanKind,
    pub quick_check: bool,
    /// Send a URL's query string (`?…`) to Criminal IP; off by default, since a query often
    /// carries a victim's address or a token. User names and passwords in URLs are never sent.
    pub send_url_query: bool,
    pub scan_poll_interval: Duration,
    pub scan_timeout: Duration,
    /// Points per signal.
    pub weights: map::Weights,
}

/// How much answer JSON the in-process cache keeps (as text; decoded it takes a few times more).
/// Older answers are reloaded from the store's archive when asked again.
const ANSWER_CACHE_BYTES: u64 = 4 * 1024 * 1024;

/// An answer's weight in the cache: the length of its JSON text.
fn answer_size(answer: &Value) -> u32 {
    serde_json::to_vec(answer).map_or(u32::MAX, |bytes| {
        u32::try_from(bytes.len()).unwrap_or(u32::MAX)
    })
}

impl CriminalIpSettings {
    /// The defaults for a key, as a non-Enterprise account needs them.
    pub fn new(api_key: Secret) -> CriminalIpSettings {
        CriminalIpSettings {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key,
            max_tlp: Tlp::Amber,
            max_requests: 1,
            per: Duration::from_secs(1),
            concurrency: 1,
            timeout: Duration::from_secs(30),
            retry: RetryPolicy {
                retries: 3,
                base: Duration::from_millis(500),
                cap: Duration::from_secs(30),
            },
            budget: BudgetLimits::default(),
            cache_ttl: Duration::from_secs(24 * 3600),
            cache_ttl_risky: Duration::from_secs(6 * 3600),
            domain_report_max_age_days: 7,
            ip_calls: IpCalls::default(),
            domain_scan: ScanKind::Full,
            quick_check: false,
            send_url_query: false,
            scan_poll_interval: Duration::from_secs(3),
            scan_timeout: Duration::from_secs(180),
            weights: map::Weights::default(),
        }
    }
}

/// The source.
pub struct CriminalIp {
    settings: CriminalIpSettings,
    client: Client,
    cache: AnswerCache<Value>,
    budget: Arc<Budget>,
    metrics: Arc<CallMetrics>,
    /// One domain scan at a time per account.
    scan_lock: tokio::sync::Mutex<()>,
    /// Where answers outlive the process (the store), when one is given.
    archive: Option<Arc<dyn AnswerArchive>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for CriminalIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CriminalIp")
            .field("base_url", &self.settings.base_url)
            .field("api_key", &self.settings.api_key)
            .finish()
    }
}

impl CriminalIp {
    /// The source on its own: no archive, a rate window of this process only, a budget that
    /// starts from zero.
    pub fn new(settings: CriminalIpSettings) -> Result<CriminalIp, String> {
        CriminalIp::with_context(settings, &SourceContext::default())
    }

    /// The source with what `context` gives: answers kept in its archive, the rate window of its
    /// ledger shared per key, and the budget charged with what earlier runs spent.
    pub fn with_context(
        settings: CriminalIpSettings,
        context: &SourceContext,
    ) -> Result<CriminalIp, String> {
        if settings.api_key.is_empty() {
            return Err("the Criminal IP API key is empty".into());
        }
        let limiter = Arc::new(Limiter::new(
            settings.concurrency,
            settings.max_requests,
            settings.per,
        ));
        let account = crate::account(&settings.api_key.fingerprint(), &settings.base_url);
        if let Some(ledger) = &context.rate_ledger {
            // The service counts calls per key, so processes share a window per account.
            limiter.share(Arc::clone(ledger), format!("criminalip:{account}"));
        }
        let budget = Arc::new(Budget::new(settings.budget));
        let (today, month) = context.spent_by("criminalip", &account);
        budget.seed(context.clock.today(), today, month);
        let metrics = Arc::new(CallMetrics::default());
        let client = Client::new(
            &settings.base_url,
            settings.api_key.clone(),
            settings.timeout,
            settings.retry,
            Guards {
                limiter,
                budget: Arc::clone(&budget),
                metrics: Arc::clone(&metrics),
                clock: Arc::clone(&context.clock),
            },
        )?;
        Ok(CriminalIp {
            settings,
            client,
            cache: AnswerCache::new(ANSWER_CACHE_BYTES, answer_size),
            budget,
            metrics,
            scan_lock: tokio::sync::Mutex::new(()),
            archive: context.archive.clone(),
            clock: Arc::clone(&context.clock),
        })
    }

    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    pub fn settings(&self) -> &CriminalIpSettings {
        &self.settings
    }

    fn ttl_for(&self, body: &Value) -> Duration {
        let levels = [
            body.pointer("/score/inbound"),
            body.pointer("/score/outbound"),
            body.pointer("/report/main_domain_info/domain_score/score"),
            body.pointer("/report/domain_score"),
        ];
        let risky = levels
            .into_iter()
            .flatten()
            .filter_map(Level::from_value)
            .any(|l| l >= Level::Dangerous);
        if risky {
            self.settings.cache_ttl_risky
        } else {
            self.settings.cache_ttl
        }
    }

    /// One cached call: the answer, and whether it came from the cache.
    /// One cached call: the answer, and whether it came from a cache (memory, or the archive of
    /// earlier runs) rather than a new request. Every new answer is kept in the archive.
    async fn cached(
        &self,
        call: &str,
        indicator: &str,
        parameters: &str,
        force: bool,
        fetch: impl Future<Output = Result<Value, CipError>>,
    ) -> Result<(Arc<Value>, bool), CipError> {
        let fingerprint = self.client.key_fingerprint();
        let key = AnswerCache::<Value>::key(&fingerprint, call, indicator, parameters);
        let archive_key = ArchiveKey {
            source: "criminalip".into(),
            key_fingerprint: fingerprint,
            call: call.into(),
            indicator: indicator.into(),
            parameters: parameters.into(),
        };
        let archive = self.archive.clone();
        if !force {
            if let Some(hit) = self.cache.get(&key).await {
                self.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Ok((hit, true));
            }
            if let Some(archive) = &archive {
                let now = self.clock.now_ms();
                match archive.load(&archive_key, now).await {
                    Ok(Some((body, expires))) => {
                        let remaining =
                            Duration::from_millis(u64::try_from(expires - now).unwrap_or(0));
                        let body = Arc::new(body);
                        self.cache.insert(key, Arc::clone(&body), remaining).await;
                        self.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
                        return Ok((body, true));
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(%error, "cannot read earlier answers from the store; asking the service")
                    }
                }
            }
        }
        let fetch_and_keep = async {
            let body = fetch.await?;
            let ttl = self.ttl_for(&body);
            if let Some(archive) = &archive {
                let now = self.clock.now_ms();
                let expires = now + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
                if let Err(error) = archive.save(&archive_key, &body, now, expires).await {
                    tracing::error!(%error, "a paid answer could not be kept in the store; it serves this run only");
                }
            }
            Ok((body, ttl))
        };
        if force {
            let (body, ttl) = fetch_and_keep.await?;
            let body = Arc::new(body);
            self.cache.insert(key, Arc::clone(&body), ttl).await;
            return Ok((body, false));
        }
        let answer = self
            .cache
            .get_or_fetch(key, fetch_and_keep)
            .await
            .map_err(|e: Arc<CipError>| (*e).clone())?;
        if answer.1 {
            self.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
        }
        Ok(answer)
    }

    async fn enrich_ip(&self, ip: &str, force: bool) -> Result<Finding, CipError> {
        let report_request = Request::get(
            "/v1/asset/ip/report",
            vec![("ip", ip.to_owned()), ("full", "true".to_owned())],
            1,
        );
        let (report, mut all_cached) = self
            .cached(
                "ip-report",
                ip,
                "full=true",
                force,
                self.client.call(&report_request),
            )
            .await?;
        let mut credits = u32::from(!all_cached);
        let mut raw = vec![("ip-report".to_owned(), (*report).clone())];
        let extras: [(bool, &str, &str); 3] = [
            (
                self.settings.ip_calls.malicious_info,
                "malicious-info",
                "/v1/feature/ip/malicious-info",
            ),
            (
                self.settings.ip_calls.suspicious_info,
                "suspicious-info",
                "/v2/feature/ip/suspicious-info",
            ),
            (
                self.settings.ip_calls.privacy_threat,
                "privacy-threat",
                "/v1/feature/ip/privacy-threat",
            ),
        ];
        for (wanted, call, path) in extras {
            if wanted {
                let request = Request::get(path, vec![("ip", ip.to_owned())], 1);
                let (body, cached) = self
                    .cached(call, ip, "", force, self.client.call(&request))
                    .await?;
                all_cached &= cached;
                credits += u32::from(!cached);
                raw.push((call.to_owned(), (*body).clone()));
            }
        }
        let decoded: IpReport = serde_json::from_value((*report).clone())
            .map_err(|e| CipError::Malformed(e.to_string()))?;
        let malicious: Option<MaliciousInfo> = raw
            .iter()
            .find(|(call, _)| call == "malicious-info")
            .and_then(|(_, body)| serde_json::from_value(body.clone()).ok());
        let mut finding = map::ip_finding(ip, &decoded, malicious.as_ref(), &self.settings.weights);
        finding.from_cache = all_cached;
        finding.credits = credits;
        finding.raw = raw;
        Ok(finding)
    }

    async fn enrich_domain(&self, query: &str, force: bool) -> Result<Finding, CipError> {
        let kind = match self.settings.domain_scan {
            ScanKind::Full => "full",
            ScanKind::Lite => "lite",
        };
        let parameters = format!(
            "scan={kind};max_age_days={}",
            self.settings.domain_report_max_age_days
        );
        let (answer, cached) = self
            .cached(
                "domain-report",
                query,
                &parameters,
                force,
                self.domain_answer(query),
            )
            .await?;
        let mut finding = if answer.get("nonexistent").and_then(Value::as_bool) == Some(true) {
            Finding {
                tags: vec!["nonexistent-domain".into()],
                details: Exposure {
                    scan_id: answer.get("scan_id").and_then(Value::as_u64),
                    exists: Some(false),
                    ..Exposure::default()
                }
                .to_detail(),
                ..Finding::default()
            }
        } else {
            let report: DomainReport =
                serde_json::from_value(answer.get("report").cloned().unwrap_or(Value::Null))
                    .unwrap_or_default();
            map::domain_finding(
                answer.get("scan_id").and_then(Value::as_u64),
                &report,
                &self.settings.weights,
            )
        };
        if self.settings.quick_check {
            let request = Request::get(
                "/v1/domain/quick/hash/view",
                vec![("domain", query.to_owned())],
                1,
            );
            let (quick, _) = self
                .cached("quick-check", query, "", force, self.client.call(&request))
                .await?;
            if let Some(check) = quick
                .get("data")
                .and_then(|data| serde_json::from_value::<wire::QuickCheck>(data.clone()).ok())
            {
                let mut exposure = Exposure::read(&finding.details);
                exposure.quick_check = Some(QuickCheck {
                    result: check.result,
                    kind: check.kind,
                    registered: check.reg_dtime,
                });
                finding.details = exposure.to_detail();
            }
        }
        finding.from_cache = cached;
        // Credits this enrichment spent (zero when the answer was cached).
        // The paid requests the scan flow made; a cached answer cost nothing this time.
        finding.credits = if cached {
            0
        } else {
            answer
                .get("credits")
                .and_then(Value::as_u64)
                .map_or(0, |c| u32::try_from(c).unwrap_or(u32::MAX))
        };
        finding.raw = vec![("domain-report".to_owned(), (*answer).clone())];
        Ok(finding)
    }

    /// Finds or makes a scan of `query` and returns `{scan_id, report}` (or `{scan_id, nonexistent}`).
    async fn domain_answer(&self, query: &str) -> Result<Value, CipError> {
        if self.settings.domain_scan == ScanKind::Full
            && let Some(scan_id) = self.recent_scan(query).await?
        {
            let report = self
                .client
                .call(&Request::get(
                    format!("/v2/domain/report/{scan_id}"),
                    vec![],
                    1,
                ))
                .await?;
            return Ok(
                json!({ "scan_id": scan_id, "reused": true, "credits": 2, "report": report.get("data").cloned().unwrap_or(Value::Null) }),
            );
        }
        // Paid requests: the listing (full scans only), the scan and the report; status polls are free.
        let listing_credits = u64::from(self.settings.domain_scan == ScanKind::Full);
        let _one_scan = self.scan_lock.lock().await;
        let started = Instant::now();
        let scan_id = self.start_scan(query, started).await?;
        let (progress_path, progress_query, report_path) = match self.settings.domain_scan {
            ScanKind::Full => (
                format!("/v1/domain/status/{scan_id}"),
                vec![],
                format!("/v2/domain/report/{scan_id}"),
            ),
            ScanKind::Lite => (
                "/v1/domain/lite/progress".to_owned(),
                vec![("scan_id", scan_id.to_string())],
                format!("/v1/domain/lite/report/{scan_id}"),
            ),
        };
        loop {
            let status = self
                .client
                .call(&Request::get(
                    progress_path.clone(),
                    progress_query.clone(),
                    0,
                ))
                .await?;
            match status
                .pointer("/data/scan_percentage")
                .and_then(Value::as_i64)
            {
                Some(p) if p >= 100 => break,
                Some(-1) => return Err(CipError::ScanFailed),
                Some(-2) => {
                    return Ok(
                        json!({ "scan_id": scan_id, "nonexistent": true, "credits": listing_credits + 1 }),
                    );
                }
                _ => {}
            }
            if started.elapsed() > self.settings.scan_timeout {
                return Err(CipError::ScanTimeout(self.settings.scan_timeout));
            }
            tokio::time::sleep(self.settings.scan_poll_interval).await;
        }
        let report = self
            .client
            .call(&Request::get(report_path, vec![], 1))
            .await?;
        let data = report.get("data").cloned().unwrap_or(Value::Null);
        Ok(
            json!({ "scan_id": scan_id, "reused": false, "credits": listing_credits + 2, "report": data }),
        )
    }

    /// The newest earlier scan of `query`, if it is recent enough.
    async fn recent_scan(&self, query: &str) -> Result<Option<u64>, CipError> {
        let listing = self
            .client
            .call(&Request::get(
                "/v1/domain/reports",
                vec![("query", query.to_owned()), ("offset", "0".to_owned())],
                1,
            ))
            .await?;
        let scans: EarlierScans =
            serde_json::from_value(listing.get("data").cloned().unwrap_or(Value::Null))
                .unwrap_or_default();
        let today = self.clock.days();
        Ok(scans.reports.first().and_then(|newest| {
            let age =
                today - scry_core::calendar::days_from_timestamp(newest.reg_dtime.as_deref()?)?;
            (age <= i64::from(self.settings.domain_report_max_age_days)).then_some(newest.scan_id?)
        }))
    }

    /// Starts a scan, waiting while the account has another one running.
    async fn start_scan(&self, query: &str, started: Instant) -> Result<u64, CipError> {
        let request = match self.settings.domain_scan {
            ScanKind::Full => {
                Request::post("/v1/domain/scan", vec![("query", query.to_owned())], 1)
            }
            ScanKind::Lite => {
                Request::get("/v1/domain/lite/scan", vec![("query", query.to_owned())], 1)
            }
        };
        loop {
            match self.client.call(&request).await {
                Ok(body) => {
                    return body
                        .pointer("/data/scan_id")
                        .and_then(|id| id.as_u64().or_else(|| id.as_str()?.parse().ok()))
                        .ok_or_else(|| {
                            CipError::Malformed("scan answer has no data.scan_id".into())
                        });
                }
                Err(CipError::StillScanning(message))
                    if started.elapsed() < self.settings.scan_timeout =>
                {
                    tracing::debug!(%message, "another scan is running for this account; waiting");
                    tokio::time::sleep(self.settings.scan_poll_interval).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `POST /v1/user/me`: the account behind the key.
    pub async fn account(&self) -> Result<Account, CipError> {
        let body = self
            .client
            .call(&Request::post("/v1/user/me", vec![], 0))
            .await?;
        serde_json::from_value(body.get("data").cloned().unwrap_or(Value::Null))
            .map_err(|e| CipError::Malformed(e.to_string()))
    }
}

fn source_error(error: CipError) -> SourceError {
    match error {
        CipError::InvalidKey(_) => SourceError::Unusable(error.to_string()),
        CipError::LimitExceeded(_) | CipError::BudgetSpent => SourceError::BudgetExhausted,
        CipError::InvalidIndicator(message) => SourceError::InvalidIndicator(message),
        other => SourceError::Failed(format!("criminalip: {other}")),
    }
}

impl Source for CriminalIp {
    fn name(&self) -> &str {
        "criminalip"
    }

    fn destination(&self) -> Destination {
        Destination::External {
            max_tlp: self.settings.max_tlp,
        }
    }

    fn supports(&self, observable: &Observable) -> bool {
        matches!(
            observable,
            Observable::Ip(_) | Observable::Domain(_) | Observable::Url(_)
        )
    }

    fn enrich<'a>(
        &'a self,
        indicator: Cleared<'a>,
        options: EnrichOptions,
    ) -> SourceFuture<'a, Result<Finding, SourceError>> {
        Box::pin(async move {
            let result = match indicator.observable() {
                Observable::Ip(ip) => self.enrich_ip(&ip.to_string(), options.force).await,
                Observable::Domain(domain) => {
                    self.enrich_domain(domain.as_str(), options.force).await
                }
                Observable::Url(url) => {
                    let asked = url.for_outside(self.settings.send_url_query);
                    self.enrich_domain(&asked, options.force).await
                }
                other => {
                    return Err(SourceError::InvalidIndicator(format!(
                        "{} is not looked up by criminalip",
                        other.stix_type()
                    )));
                }
            };
            result.map_err(source_error)
        })
    }

    fn take_budget_events(&self) -> Vec<crate::guard::BudgetEvent> {
        self.budget.take_new_events()
    }

    fn take_attempts(&self) -> Vec<crate::guard::Attempt> {
        self.metrics.take_attempts()
    }

    fn account(&self) -> Option<String> {
        Some(crate::account(
            &self.settings.api_key.fingerprint(),
            &self.settings.base_url,
        ))
    }

    fn status_line(&self) -> Option<String> {
        let m = self.metrics.snapshot();
        let (today, month) = self.budget.used();
        let limits = self.budget.limits();
        let of = |used: u64, limit: Option<u64>| {
            limit.map_or_else(|| used.to_string(), |l| format!("{used}/{l}"))
        };
        let latency = match (m.latency_p50_ms, m.latency_p99_ms) {
            (Some(p50), Some(p99)) => format!("; latency p50 {p50} ms, p99 {p99} ms"),
            _ => String::new(),
        };
        Some(format!(
            "criminalip: {} requests ({} ok, {} errors, {} retries), {} cache hits, credits today {}, this month {}{latency}",
            m.requests,
            m.ok,
            m.errors,
            m.retries,
            m.cache_hits,
            of(today, limits.daily),
            of(month, limits.monthly),
        ))
    }

    fn check(&self) -> SourceFuture<'_, Result<String, SourceError>> {
        Box::pin(async move {
            match self.account().await {
                Ok(account) => Ok(format!(
                    "key accepted (fingerprint {}); account type {}, search allowance {}",
                    self.settings.api_key.fingerprint(),
                    account.account_type.as_deref().unwrap_or("unknown"),
                    account.max_search.as_ref().map_or_else(
                        || "unknown".to_owned(),
                        |v| v.to_string().trim_matches('"').to_owned()
                    ),
                )),
                Err(error) => Err(SourceError::Unusable(error.to_string())),
            }
        })
    }
}
