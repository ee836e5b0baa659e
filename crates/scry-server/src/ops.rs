//! What machines poll: plain-text blocklists for firewalls (EDL), Prometheus metrics, and the
//! health check. All cheap to answer: an EDL carries an ETag so an unchanged list costs a 304.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use scry_engine::access::Role;
use scry_sources::secret::digest_hex;

use crate::AppState;
use crate::api::known_blocklist;
use crate::auth::caller;
use crate::error::ApiError;

/// `GET /edl/{name}` (`.txt` optional): one value per line, sorted; what firewalls poll.
pub async fn edl(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if state.loaded.config.server.edl_requires_token {
        let who = caller(&state, &headers)
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        if !who.principal.may(Role::Viewer) {
            return Err(ApiError::Forbidden {
                needed: Role::Viewer,
                has: who.principal.role,
            });
        }
    }
    let name = name.strip_suffix(".txt").unwrap_or(&name).to_owned();
    let config = known_blocklist(&state, &name)?;
    let entries = state
        .store
        .blocklist(&name, scry_engine::automation::now_ms())
        .await?;
    let rendered = scry_engine::blocklist::render(config, entries);
    if let Some(warning) = rendered.cap_warning(&name, config) {
        tracing::warn!("{warning}");
    }
    let body = rendered.body;
    let etag = format!("\"{}\"", &digest_hex(&body)[..32]);
    let unchanged = none_match(&headers, &etag);
    let etag_header = HeaderValue::from_str(&etag).expect("hex is a valid header");
    if unchanged {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_header)]).into_response());
    }
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (header::ETAG, etag_header),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response())
}

/// Whether `If-None-Match` names the current representation, whose entity tag is `etag`
/// (RFC 9110, 13.1.2): `*`, or any listed tag equal to it by the weak comparison (`W/"x"` and
/// `"x"` match, as firewalls and proxies send either). Eleven lines of the RFC, so written here
/// rather than bringing in a typed-headers crate for them.
pub(crate) fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    let current = opaque(etag);
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == "*" || opaque(tag) == current)
}

/// `GET /healthz`: 200 when the store answers, 503 when it does not.
pub async fn health(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ok", "store": state.store.backend()})),
        )
            .into_response(),
        Err(error) => {
            tracing::warn!("health check: the store did not answer: {error}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(
                    serde_json::json!({"status": "unavailable", "store": state.store.backend()}),
                ),
            )
                .into_response()
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The route's template (`/api/v1/indicators/{indicator}`), so values do not explode labels.
    pub route: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    source: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountLabels {
    source: String,
    account: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

/// What the server counts itself; the rest of `/metrics` is read from the store when scraped,
/// so it is true for every worker writing to that store.
#[derive(Debug, Clone)]
pub struct Metrics {
    connections_open: Gauge,
    connections_refused: Family<RefusalLabels, Counter>,
    connections_evicted: Counter,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RequestLabels, Histogram>,
    submitted: Counter,
    login_failures: Counter,
    logins_refused: Counter,
}

/// A histogram of the server's answer times.
fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BOUNDS)
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            connections_open: Gauge::default(),
            connections_refused: Family::default(),
            connections_evicted: Counter::default(),
            requests: Family::default(),
            durations: Family::new_with_constructor(latency_histogram),
            submitted: Counter::default(),
            login_failures: Counter::default(),
            logins_refused: Counter::default(),
        }
    }
}

impl Metrics {
    pub fn request(&self, labels: RequestLabels, seconds: f64) {
        self.requests.get_or_create(&labels).inc();
        self.durations.get_or_create(&labels).observe(seconds);
    }

    pub fn ingested(&self, queued: u64) {
        self.submitted.inc_by(queued);
    }

    /// A login with a wrong password, an unknown user or a bad token.
    pub fn login_failed(&self) {
        self.login_failures.inc();
    }

    /// A login refused unchecked because its account or address is locked.
    pub fn login_refused(&self) {
        self.logins_refused.inc();
    }

    pub fn connection_opened(&self) {
        self.connections_open.inc();
    }

    pub fn connection_closed(&self) {
        self.connections_open.dec();
    }

    /// A connection closed as soon as it was accepted, because of a cap.
    pub fn connection_refused(&self, refusal: Refusal) {
        self.connections_refused
            .get_or_create(&RefusalLabels {
                reason: refusal.as_str(),
            })
            .inc();
    }

    /// A connection that had sent nothing, closed to make room at the overall cap.
    pub fn connection_evicted(&self) {
        self.connections_evicted.inc();
    }
}

/// Why the listener closed a connection as soon as it took it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its address holds `[server] max_connections_per_address` already.
    PerAddress,
    /// `[server] max_connections` are open and each has sent a request.
    Full,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::PerAddress => "per-address",
            Refusal::Full => "full",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RefusalLabels {
    reason: &'static str,
}

/// Latency bounds of the histograms, in seconds, for the server's answers and the vendors'.
const LATENCY_BOUNDS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The two exposition formats a scraper may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exposition {
    /// Prometheus text format 0.0.4: what `promtool check metrics` and most scrapers read.
    Text,
    /// OpenMetrics 1.0, which Prometheus asks for first.
    OpenMetrics,
}

impl Exposition {
    /// The format `Accept` prefers (RFC 9110 quality values); text when it names neither.
    pub(crate) fn negotiate(headers: &HeaderMap) -> Exposition {
        let mut best = (Exposition::Text, 0.0_f32);
        for range in headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
        {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let quality = parts
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let format = match media.as_str() {
                "application/openmetrics-text" => Exposition::OpenMetrics,
                "text/plain" | "text/*" | "*/*" => Exposition::Text,
                _ => continue,
            };
            // At equal quality the text format wins: it is the one every reader knows.
            if quality > best.1 || (quality == best.1 && format == Exposition::Text) {
                best = (format, quality);
            }
        }
        best.0
    }

    fn content_type(self) -> &'static str {
        match self {
            Exposition::Text => "text/plain; version=0.0.4; charset=utf-8",
            Exposition::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The text format 0.0.4 of an OpenMetrics exposition (what `prometheus_client` writes; the
/// crates that write 0.0.4 keep registries of their own). For the families written here the two
/// differ in three ways: a counter's HELP and TYPE name its samples' `_total` name, there is no
/// `# UNIT` and no `# EOF`.
fn prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut text = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        text.push_str(renamed.as_deref().unwrap_or(line));
        text.push('\n');
    }
    text
}

/// The vendors' request latencies, counted by the store at each scrape: a histogram per source
/// whose buckets are not observed here, so it is written as a collector.
#[derive(Debug)]
struct VendorLatencies(Vec<scry_store::LatencyHistogram>);

impl Collector for VendorLatencies {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "vendor_request_duration_seconds",
            "How long vendors took to answer scry's HTTP requests, every request the history holds",
            None,
            MetricType::Histogram,
        )?;
        for histogram in &self.0 {
            let labels = SourceLabels {
                source: histogram.source.clone(),
            };
            let buckets: Vec<(f64, u64)> = LATENCY_BOUNDS
                .iter()
                .copied()
                .zip(histogram.at_or_under.iter().copied())
                .chain(std::iter::once((f64::INFINITY, histogram.count)))
                .collect();
            family
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(
                    histogram.sum_ms as f64 / 1000.0,
                    histogram.count,
                    &buckets,
                    None,
                )?;
        }
        Ok(())
    }
}

/// `GET /metrics`: the text format 0.0.4, or OpenMetrics when `Accept` prefers it. What the
/// vendors were asked and what they cost are counters over the whole history, read from the store
/// at each scrape, so they are true for every worker writing to it.
pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut registry = Registry::with_prefix("scry");
    let m = &state.metrics;
    registry.register(
        "http_requests",
        "HTTP requests by route and status",
        m.requests.clone(),
    );
    registry.register(
        "http_request_duration_seconds",
        "HTTP request time by route and status",
        m.durations.clone(),
    );
    registry.register(
        "indicators_submitted",
        "Enrichment jobs queued through the API",
        m.submitted.clone(),
    );
    registry.register(
        "connections_open",
        "Client connections open now",
        m.connections_open.clone(),
    );
    registry.register(
        "connections_refused",
        "Connections closed on arrival: their address or the server was at its cap",
        m.connections_refused.clone(),
    );
    registry.register(
        "connections_evicted",
        "Connections that had sent nothing, closed to make room at [server] max_connections",
        m.connections_evicted.clone(),
    );
    registry.register(
        "login_failures",
        "Workbench logins that failed (wrong password, unknown user, bad token)",
        m.login_failures.clone(),
    );
    registry.register(
        "logins_refused",
        "Workbench logins refused unchecked while their account or address was locked",
        m.logins_refused.clone(),
    );
    let depth = state
        .store
        .queue_depth(scry_engine::automation::now_ms())
        .await?;
    let jobs = Family::<StateLabels, Gauge>::default();
    for (name, n) in [
        ("ready", depth.ready),
        ("waiting", depth.waiting),
        ("done", depth.done),
        ("failed", depth.failed),
    ] {
        jobs.get_or_create(&StateLabels { state: name.into() })
            .set(n as i64);
    }
    registry.register("jobs", "Jobs in the queue by state", jobs);
    let calls = Family::<CallLabels, Counter>::default();
    let credits = Family::<AccountLabels, Counter>::default();
    let requests = Family::<CallLabels, Counter>::default();
    let retries = Family::<SourceLabels, Counter>::default();
    let call = |source: &str, outcome: &str| CallLabels {
        source: source.to_owned(),
        outcome: outcome.to_owned(),
    };
    for (source, usage) in scry_engine::usage::lifetime_usage(state.store.as_ref()).await? {
        for (outcome, n) in [
            ("paid", usage.paid),
            ("cached", usage.cached),
            ("failed", usage.failed),
        ] {
            calls.get_or_create(&call(&source, outcome)).inc_by(n);
        }
        for (account, n) in &usage.credits_by_account {
            credits
                .get_or_create(&AccountLabels {
                    source: source.clone(),
                    account: account.clone(),
                })
                .inc_by(*n);
        }
        let errors: u64 = usage.errors.values().sum();
        requests
            .get_or_create(&call(&source, "ok"))
            .inc_by(usage.attempts.saturating_sub(errors));
        for (kind, n) in &usage.errors {
            requests.get_or_create(&call(&source, kind)).inc_by(*n);
        }
        retries
            .get_or_create(&SourceLabels {
                source: source.clone(),
            })
            .inc_by(usage.retries);
    }
    registry.register(
        "source_calls",
        "Source calls by outcome: paid (bought), cached (answered from the cache or the archive), failed",
        calls,
    );
    registry.register(
        "credits_spent",
        "Credits spent, per account (a key at a service address)",
        credits,
    );
    registry.register(
        "vendor_requests",
        "HTTP requests to vendors by outcome: ok, 429, 5xx, timeout, refused, limit, other",
        requests,
    );
    registry.register(
        "vendor_retries",
        "HTTP requests to vendors that repeated a failed one",
        retries,
    );
    let bounds_ms: Vec<u64> = LATENCY_BOUNDS
        .iter()
        .map(|seconds| (seconds * 1000.0).round() as u64)
        .collect();
    let latencies = state.store.attempt_latency_histograms(&bounds_ms).await?;
    registry.register_collector(Box::new(VendorLatencies(latencies)));
    let mut openmetrics = String::new();
    prometheus_client::encoding::text::encode(&mut openmetrics, &registry)
        .map_err(|e| ApiError::Internal(format!("encoding metrics: {e}")))?;
    let format = Exposition::negotiate(&headers);
    let body = match format {
        Exposition::OpenMetrics => openmetrics,
        Exposition::Text => prometheus_text(&openmetrics),
    };
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::VARY, "Accept"),
        ],
        body,
    )
        .into_response())
}
