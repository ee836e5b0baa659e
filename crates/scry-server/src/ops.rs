//! What machines poll: plain-text blocklists for firewalls (EDL), Prometheus metrics, and the
//! health check. All cheap to answer: an EDL carries an ETag so an unchanged list costs a 304.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
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
    known_blocklist(&state, &name)?;
    let entries = state
        .store
        .blocklist(&name, scry_engine::automation::now_ms())
        .await?;
    let mut body = String::with_capacity(entries.len() * 16);
    for entry in &entries {
        body.push_str(&entry.value);
        body.push('\n');
    }
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

/// Histogram buckets in seconds, for the server's answers and the vendors'.
fn latency_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
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

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
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
    let usage = scry_engine::usage::source_usage(state.store.as_ref()).await?;
    let calls = Family::<CallLabels, Gauge>::default();
    let credits_today = Family::<SourceLabels, Gauge>::default();
    let credits_month = Family::<SourceLabels, Gauge>::default();
    for u in &usage {
        for (outcome, n) in [
            ("paid", u.today.paid),
            ("cached", u.today.cached),
            ("failed", u.today.failed),
        ] {
            calls
                .get_or_create(&CallLabels {
                    source: u.source.clone(),
                    outcome: outcome.into(),
                })
                .set(n as i64);
        }
        let source = SourceLabels {
            source: u.source.clone(),
        };
        credits_today
            .get_or_create(&source)
            .set(u.today.credits as i64);
        credits_month
            .get_or_create(&source)
            .set(u.month.credits as i64);
    }
    // The vendors' side, from the history every process writes: each HTTP request today (UTC),
    // by outcome kind, its retries, and its latency as a histogram. Counted afresh at each
    // scrape, so they start again from zero each day, as after a restart.
    let requests = Family::<CallLabels, Gauge>::default();
    let retries = Family::<SourceLabels, Gauge>::default();
    let latency = Family::<SourceLabels, Histogram, fn() -> Histogram>::new_with_constructor(
        latency_histogram,
    );
    for u in &usage {
        let source = SourceLabels {
            source: u.source.clone(),
        };
        let errors: u64 = u.today.errors.values().sum();
        requests
            .get_or_create(&CallLabels {
                source: u.source.clone(),
                outcome: "ok".into(),
            })
            .set(u.today.attempts.saturating_sub(errors) as i64);
        for (kind, n) in &u.today.errors {
            requests
                .get_or_create(&CallLabels {
                    source: u.source.clone(),
                    outcome: kind.clone(),
                })
                .set(*n as i64);
        }
        retries.get_or_create(&source).set(u.today.retries as i64);
        let samples =
            scry_engine::usage::request_latencies(state.store.as_ref(), &u.source).await?;
        let histogram = latency.get_or_create(&source);
        for ms in samples {
            histogram.observe(ms as f64 / 1000.0);
        }
    }
    registry.register(
        "vendor_requests_today",
        "HTTP requests to vendors today (UTC) by outcome: ok, 429, 5xx, timeout, refused, limit, other",
        requests,
    );
    registry.register(
        "vendor_retries_today",
        "HTTP requests to vendors today (UTC) that repeated a failed one",
        retries,
    );
    registry.register(
        "vendor_request_duration_seconds_today",
        "How long vendors took to answer today's HTTP requests (UTC)",
        latency,
    );
    registry.register(
        "vendor_calls_today",
        "Source calls today (UTC) by outcome: paid, cached (cache hits), failed",
        calls,
    );
    registry.register("credits_today", "Credits spent today (UTC)", credits_today);
    registry.register(
        "credits_month",
        "Credits spent this month (UTC)",
        credits_month,
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .map_err(|e| ApiError::Internal(format!("encoding metrics: {e}")))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
