//! scry's HTTP front end, the only crate that knows HTTP serving: the REST API with its OpenAPI
//! document (`api`), TAXII 2.1 (`taxii`), blocklists, metrics and health (`ops`), with
//! authentication and roles (`auth`) and one error table (`error`).
//!
//! Handlers hold no logic of their own: they check input, call the engine and the store the CLI
//! uses, and shape the answer. `scry serve` builds an [`AppState`] and calls [`serve`].

pub mod api;
pub mod auth;
pub mod error;
pub mod listen;
pub mod ops;
pub mod taxii;
pub mod throttle;
pub mod ui;
pub mod uploads;

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use scry_core::Tlp;
use scry_engine::Engine;
use scry_engine::access::Role;
use scry_engine::automation::Automation;
use scry_engine::config::LoadedConfig;
use scry_store::Store;

use crate::error::ApiError;
use crate::ops::{Metrics, RequestLabels};

/// What every handler reaches: the store, the configuration, the engine and the rules.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub store: Arc<dyn Store>,
    pub loaded: Arc<LoadedConfig>,
    pub engine: Arc<Engine>,
    pub automation: Arc<Automation>,
    pub metrics: Metrics,
    pub logins: throttle::LoginThrottle,
    pub uploads: uploads::Uploads,
    /// `[server] trusted_proxies`, parsed once (the configuration was checked when it loaded).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        loaded: Arc<LoadedConfig>,
        engine: Arc<Engine>,
        automation: Arc<Automation>,
    ) -> AppState {
        let trusted_proxies = loaded.trusted_proxies().unwrap_or_default();
        AppState(Arc::new(Shared {
            store,
            loaded,
            engine,
            automation,
            metrics: Metrics::default(),
            logins: throttle::LoginThrottle::default(),
            uploads: uploads::Uploads::default(),
            trusted_proxies,
        }))
    }

    /// The TLP of indicators stored without one, in STIX output.
    pub fn unmarked_tlp(&self) -> Tlp {
        self.loaded
            .default_tlp()
            .ok()
            .flatten()
            .unwrap_or(Tlp::Amber)
    }
}

/// The whole application: every route with the role it needs, and the layers all share.
pub fn router(state: AppState) -> Router {
    let needs = |role: Role| middleware::from_fn_with_state((state.clone(), role), auth::guard);
    let viewer = Router::new()
        .route("/api/v1/whoami", get(api::whoami))
        .route("/api/v1/indicators", get(api::list_indicators))
        .route("/api/v1/indicators/{indicator}", get(api::indicator_detail))
        .route(
            "/api/v1/indicators/{indicator}/stix",
            get(api::indicator_stix),
        )
        .route("/api/v1/indicators/{indicator}/pivot", get(api::pivot))
        .route("/api/v1/rules", get(api::rules))
        .route("/api/v1/history", get(api::history))
        .route("/api/v1/sources", get(api::sources))
        .route("/api/v1/queue", get(api::queue))
        .route("/api/v1/dashboard", get(api::dashboard))
        .route("/api/v1/graph", get(api::graph))
        .route("/api/v1/blocklists", get(api::blocklists))
        .route("/api/v1/blocklists/{name}", get(api::blocklist))
        .route_layer(needs(Role::Viewer));
    let analyst = Router::new()
        .route("/api/v1/indicators", post(api::submit_indicators))
        .route("/api/v1/indicators/upload", post(api::upload_indicators))
        .route("/api/v1/uploads/{id}", get(api::upload_status))
        .route("/api/v1/indicators/actions", post(api::act_on_indicators))
        .route(
            "/api/v1/indicators/{indicator}/enrich",
            post(api::enrich_indicator),
        )
        .route("/api/v1/rules/test", post(api::rule_test))
        .route_layer(needs(Role::Analyst));
    let admin = Router::new()
        .route(
            "/api/v1/tokens",
            get(api::list_tokens).post(api::create_token),
        )
        .route("/api/v1/tokens/{name}", delete(api::revoke_token))
        .route_layer(needs(Role::Admin));
    let public = Router::new()
        .route("/healthz", get(ops::health))
        .route("/metrics", get(ops::metrics))
        .route("/api/v1/openapi.json", get(openapi))
        // Token-protected when [server] edl_requires_token is set.
        .route("/edl/{name}", get(ops::edl));
    let page = |role: Role| middleware::from_fn_with_state((state.clone(), role), ui::page_guard);
    let pages = Router::new()
        .route("/", get(ui::queue))
        .route("/indicator/{indicator}", get(ui::indicator))
        .route("/dashboard", get(ui::dashboard))
        .route("/rules", get(ui::rules))
        .route("/sources", get(ui::sources))
        .route("/blocklists", get(ui::blocklists))
        .route("/history", get(ui::history))
        .route("/ui/events", get(ui::events))
        .route("/logout", post(ui::logout))
        .route_layer(page(Role::Viewer));
    let forms = Router::new()
        .route("/ui/submit", post(ui::submit))
        .route("/ui/actions", post(ui::actions))
        .route("/ui/enrich/{indicator}", post(ui::enrich))
        .route("/ui/sources/test", post(ui::test_sources))
        .route_layer(page(Role::Analyst));
    let login = Router::new()
        .route("/login", get(ui::login_page).post(ui::login))
        .route("/assets/{*path}", get(ui::asset));
    let max_body = state.loaded.config.server.max_body_mib as usize * 1024 * 1024;
    Router::new()
        .merge(viewer)
        .merge(analyst)
        .merge(admin)
        .merge(public)
        .merge(pages)
        .merge(forms)
        .merge(login)
        .merge(taxii::routes(&state))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(state.clone(), time_limit))
        .layer(middleware::map_response(security_headers))
        .layer(middleware::from_fn_with_state(state.clone(), count_request))
        .with_state(state)
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        api::openapi_json(),
    )
        .into_response()
}

/// An unknown route: TAXII's error object under `/taxii2/`, the API's elsewhere.
async fn not_found(request: Request) -> Response {
    let path = request.uri().path();
    if path.starts_with(taxii::ROOT) {
        return taxii::TaxiiError::not_found(format!("no TAXII resource {path}")).into_response();
    }
    ApiError::NotFound(format!("no route {path}")).into_response()
}

/// A known route asked with a method it does not serve, answered in the route's own shape.
async fn method_not_allowed(request: Request) -> Response {
    let message = format!(
        "{} is not served on {}",
        request.method(),
        request.uri().path()
    );
    if request.uri().path().starts_with(taxii::ROOT) {
        return taxii::TaxiiError::method_not_allowed(message).into_response();
    }
    let body = error::ErrorBody {
        error: error::ErrorDetail {
            code: "method_not_allowed",
            message,
            field: None,
        },
    };
    (axum::http::StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response()
}

/// Headers every answer carries: no sniffing, no framing by other sites, no referrer leaks, and
/// a content policy that lets pages load only what scry itself serves.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        (
            "content-security-policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
        ),
        ("cross-origin-opener-policy", "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Ends a request whose body and answer take longer than `[server] request_timeout_seconds`
/// with `408`; a live stream is not cut once its answer has started.
async fn time_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let seconds = state.loaded.config.server.request_timeout_seconds;
    match tokio::time::timeout(Duration::from_secs_f64(seconds), next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimeout(seconds.round() as u64).into_response(),
    }
}

/// Counts each request by route template and status, with its duration.
async fn count_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method()).to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    state.metrics.request(
        RequestLabels {
            method,
            route,
            status: response.status().as_u16(),
        },
        started.elapsed().as_secs_f64(),
    );
    response
}

/// A request's method as a metric label: one of the standard methods, else `OTHER`, so made-up
/// methods cannot grow the label set.
fn method_label(method: &axum::http::Method) -> &'static str {
    ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        .into_iter()
        .find(|known| *known == method.as_str())
        .unwrap_or("OTHER")
}

/// Serves `router(state)` on `listener` within `limits` ([`listen`]) until `stop` completes;
/// requests in progress finish.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    limits: listen::Limits,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let metrics = state.metrics.clone();
    listen::serve(router(state), metrics, listener, limits, stop).await
}
